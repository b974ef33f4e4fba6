"""Hub conventions: config attribute access, version stamp, device/dtype on load, push_to_hub and loading
by repo id (the Hub API is replaced by a local fake: nothing reaches the network)."""
import json
import shutil
import sys

import pytest
import torch

import scvae
from scvae.errors import ScvaeError
from scvae.models import SCVAE, AutoencoderModel

from .tiny import TINY_SCVAE

TINY = TINY_SCVAE


@pytest.fixture
def saved(tmp_path):
    model = SCVAE(**TINY)
    return model, model.save_pretrained(tmp_path / "model")


def test_config_has_attribute_access_and_a_version_stamp(saved):
    model, folder = saved
    assert model.config.lam == model.config["lam"] == 0.3 and model.config.n_atoms == 36
    with pytest.raises(AttributeError, match="no 'nope'"):
        model.config.nope
    stored = json.loads((folder / "config.json").read_text())
    assert stored["scvae_version"] == scvae.__version__ and stored["model_type"] == "scvae"
    assert "scvae_version" not in AutoencoderModel.from_pretrained(folder).config


def test_from_pretrained_device_and_dtype(saved):
    model, folder = saved
    loaded = AutoencoderModel.from_pretrained(folder, device="cpu", dtype=torch.float64)
    assert all(p.dtype == torch.float64 and p.device.type == "cpu" for p in loaded.parameters())
    assert not loaded.training
    x = torch.rand(1, 3, 16, 16, dtype=torch.float64) * 2 - 1
    assert torch.allclose(loaded.reconstruct(x).float(), model.eval().reconstruct(x.float()), atol=1e-4)


class FakeHub:
    """Stands in for huggingface_hub: a dict of repo id -> local folder."""

    def __init__(self, root):
        self.root, self.repos, self.calls = root, {}, []
        hub = self

        class HfApi:
            def __init__(self, token=None):
                hub.calls.append(("token", token))

            def create_repo(self, repo_id, private=None, exist_ok=False):
                hub.calls.append(("create", repo_id, private))

            def upload_folder(self, repo_id, folder_path, commit_message, revision=None):
                target = hub.root / repo_id.replace("/", "__")
                shutil.copytree(folder_path, target, dirs_exist_ok=True)
                hub.repos[repo_id] = target
                return type("CommitInfo", (), {"commit_url": f"https://hub/{repo_id}/commit/1"})()

        self.HfApi = HfApi

    def snapshot_download(self, repo_id, revision=None, library_name=None):
        if repo_id not in self.repos:
            raise FileNotFoundError(f"404 {repo_id}")
        return str(self.repos[repo_id])


def test_push_to_hub_then_from_pretrained_by_repo_id(saved, tmp_path, monkeypatch):
    model, _ = saved
    fake = FakeHub(tmp_path)
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake)
    url = model.push_to_hub("me/tiny-scvae", private=True, token="t")
    assert url.endswith("/commit/1") and ("create", "me/tiny-scvae", True) in fake.calls
    assert sorted(p.name for p in fake.repos["me/tiny-scvae"].iterdir()) == ["config.json", "model.safetensors"]
    loaded = SCVAE.from_pretrained("me/tiny-scvae")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    with pytest.raises(ScvaeError, match="me/missing: no such local folder, and no Hub repo could be downloaded"):
        SCVAE.from_pretrained("me/missing")


def test_hub_without_huggingface_hub_is_one_line(saved, monkeypatch):
    model, _ = saved
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(ScvaeError, match=r"pip install 'scvae\[hub\]'"):
        model.push_to_hub("me/x")


def test_cli_model_argument_takes_a_repo_id(saved, tmp_path, monkeypatch):
    from scvae.training import load_model

    model, folder = saved
    fake = FakeHub(tmp_path)
    fake.repos["me/tiny"] = folder
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake)
    assert load_model("me/tiny").config == model.config
    with pytest.raises(ScvaeError, match="no such run"):
        load_model(str(tmp_path / "not-here"))
