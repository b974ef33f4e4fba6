"""Hugging Face Hub conventions for the model family: attribute access to the config, ``push_to_hub``
and loading by repo id. ``huggingface_hub`` is optional (``pip install scvae[hub]``); nothing here touches
the network unless one of these two functions is called.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from ..errors import ScvaeError

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ModelConfig(dict):
    """The constructor's keyword arguments: a dict (``config["lam"]``) with attribute access (``config.lam``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"config has no {name!r}") from None


def _hub(repo_id: str = ""):
    try:
        import huggingface_hub
    except ImportError:
        raise ScvaeError(f"{repo_id}: no such local folder; as a Hub repo id it needs huggingface_hub: "
                         "pip install 'scvae[hub]'" if repo_id else
                         "the Hugging Face Hub needs huggingface_hub: pip install 'scvae[hub]'") from None
    return huggingface_hub


def looks_like_repo_id(name: str | Path) -> bool:
    """``owner/name`` that is no local path: neither it nor its ``owner`` part exists here (``runs/nope``,
    a mistyped run inside an existing ``runs/``, is a missing folder, not a repo)."""
    return (isinstance(name, str) and _REPO_ID.match(name) is not None and not Path(name).exists()
            and not Path(name).parent.exists())


def download(repo_id: str, revision: str | None = None) -> Path:
    """The local folder of a Hub model repo (downloaded once into the Hub cache)."""
    hub = _hub(repo_id)
    try:
        return Path(hub.snapshot_download(repo_id, revision=revision, library_name="scvae"))
    except Exception as exc:  # noqa: BLE001 - network, auth and missing repos alike become one line
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise ScvaeError(f"{repo_id}: no such local folder, and no Hub repo could be downloaded "
                         f"({type(exc).__name__}: {reason})") from None


def push_to_hub(model, repo_id: str, *, private: bool | None = None, token: str | None = None,
                commit_message: str = "Upload scvae model", revision: str | None = None) -> str:
    """Save ``model`` (config.json + model.safetensors) and upload it to ``repo_id``; returns the commit URL."""
    hub = _hub()
    api = hub.HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        info = api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=commit_message, revision=revision)
    return str(getattr(info, "commit_url", info))
