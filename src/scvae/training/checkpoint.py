"""Checkpoints written atomically: a model directory (config.json + model.safetensors) plus trainer state.

``trainer_state.pt`` holds only tensors and plain containers (optimizer state, step, RNG state) and is
read back with ``torch.load(weights_only=True)``: loading never runs pickled code.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from ..errors import ScvaeError
from ..files import fsync_dir
from ..models import AutoencoderModel

STATE_NAME = "trainer_state.pt"
CHECKPOINT_FILES = ("config.json", "model.safetensors", STATE_NAME)


def is_complete(directory: Path) -> bool:
    """Whether ``directory`` holds every file :func:`save_checkpoint` writes."""
    return all((directory / name).is_file() for name in CHECKPOINT_FILES)


def save_checkpoint(directory: str | os.PathLike, model: AutoencoderModel, state: dict[str, Any]) -> Path:
    """Write ``directory`` atomically: build it beside the target and fsync it, then swap it in by renames.

    A kill between the two renames leaves the complete new copy as ``.NAME.tmp-PID``, which
    :func:`recover_checkpoint` puts in place; leftovers of dead writers are removed after each save.
    """
    directory = Path(directory)
    tmp = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    torch.save(state, tmp / STATE_NAME)
    _fsync_tree(tmp)
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    fsync_dir(directory.parent)
    for leftover in directory.parent.glob(f".{directory.name}.*-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    return directory


def recover_checkpoint(directory: str | os.PathLike) -> bool:
    """If ``directory`` is missing but a complete copy written by :func:`save_checkpoint` survived a kill
    (the new ``.NAME.tmp-PID``, else the previous ``.NAME.old-PID``), move it into place; returns whether
    ``directory`` now exists."""
    directory = Path(directory)
    if directory.is_dir():
        return True
    for pattern in (f".{directory.name}.tmp-*", f".{directory.name}.old-*"):
        complete = [p for p in directory.parent.glob(pattern) if is_complete(p)]
        if complete:
            max(complete, key=lambda p: p.stat().st_mtime).rename(directory)
            return True
    return False


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())
    fsync_dir(folder)


def load_trainer_state(directory: str | os.PathLike) -> dict[str, Any]:
    path = Path(directory) / STATE_NAME
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ScvaeError(f"{path}: missing; cannot resume") from None
    except Exception as exc:
        raise ScvaeError(f"{path}: unreadable or truncated ({type(exc).__name__})") from None
