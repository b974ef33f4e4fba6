"""Run directories: made ready for a start, never lost to an interrupted ``--overwrite``, read back as models.

A start with ``--overwrite`` moves the old run aside as ``.NAME.replaced-PID`` and deletes it only once the
new run has written its first checkpoint. A start killed before that (``kill -9`` included) leaves the old
run aside; the next command that touches the run directory puts it back (or, if the new run did save a
checkpoint, deletes it).

A run directory with no checkpoint yet holds only what a start writes first (config, start record,
metrics): there is nothing to resume and nothing to lose, so a plain start or ``--resume`` starts it anew.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import torch

from ..errors import ScvaeError
from ..models import AutoencoderModel
from .checkpoint import is_complete, recover_checkpoint
from .loggers import METRICS_FILE

log = logging.getLogger(__name__)
CONFIG_FILE = "config.yaml"
RUN_INFO_FILE = "run_info.json"  # every start of the run: command line, versions, date
GRID_FILE = "reconstructions.png"
CHECKPOINTS = "checkpoints"
CHECKPOINT_NAMES = ("best", "last")
START_FILES = {CONFIG_FILE, RUN_INFO_FILE, METRICS_FILE, GRID_FILE, CHECKPOINTS, "tensorboard"}


def has_checkpoint(out: Path) -> bool:
    """Whether ``out`` holds a complete checkpoint under its final name (``checkpoints/best`` or ``last``).

    A temporary ``.NAME.tmp-PID`` never counts, complete or not: its ``config.json`` is written first, so a
    start killed during its first save must not pass for one that has begun. Reads only."""
    folder = Path(out) / CHECKPOINTS
    return any(is_complete(folder / name) for name in CHECKPOINT_NAMES)


def is_unstarted(out: Path) -> bool:
    """``out`` is a directory holding nothing but what a start writes before its first checkpoint."""
    out = Path(out)
    if not out.is_dir() or has_checkpoint(out):
        return False
    return all(p.name in START_FILES or (p.name.startswith(".") and ".tmp-" in p.name) for p in out.iterdir())


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def recover_replaced_runs(out: Path) -> None:
    """Settle every ``.NAME.replaced-PID`` beside ``out`` whose start is no longer running: delete it if the
    new run in ``out`` saved a checkpoint, else put it back in place of ``out``."""
    out = Path(out)
    for aside in sorted(out.parent.glob(f".{out.name}.replaced-*")):
        if _alive(aside.name.rsplit("-", 1)[-1]):
            continue
        started = has_checkpoint(out)
        settle_replaced_run(out, aside, started)
        if not started:
            log.warning("%s: put back the run that an interrupted --overwrite start had moved aside", out)


def prepare_run_dir(out: Path, resume: bool, overwrite: bool) -> Path | None:
    """Make ``out`` ready for a run. With ``overwrite``, a non-empty ``out`` is moved aside, not deleted:
    the returned path holds it until :func:`settle_replaced_run` deletes or restores it."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ScvaeError(f"{out}: is a file, not a run directory")
    recover_replaced_runs(out)
    if resume:
        if not recover_checkpoint(out / CHECKPOINTS / "last"):
            raise ScvaeError(f"{out}: nothing to resume (no checkpoints/last)")
        return None
    aside = None
    if is_unstarted(out):  # a start stopped before its first checkpoint: only its own files to replace
        shutil.rmtree(out)
    elif out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ScvaeError(f"{out}: run directory exists and is not empty; pass --resume or --overwrite")
        aside = out.with_name(f".{out.name}.replaced-{os.getpid()}")
        shutil.rmtree(aside, ignore_errors=True)
        out.rename(aside)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        settle_replaced_run(out, aside, started=False)
        raise ScvaeError(f"{out}: cannot create the run directory ({exc.strerror})") from None
    return aside


def settle_replaced_run(out: Path, aside: Path | None, started: bool) -> None:
    """Delete the run that ``--overwrite`` moved aside once the new run has a checkpoint; otherwise put it
    back."""
    if aside is None or not aside.exists():
        return
    if started:
        shutil.rmtree(aside, ignore_errors=True)
    else:
        shutil.rmtree(out, ignore_errors=True)
        aside.rename(out)


def resolve_model_dir(path: str | os.PathLike) -> Path:
    """A run directory (its best, else last checkpoint) or a model directory itself."""
    path = Path(path)
    recover_replaced_runs(path)
    if not path.exists():
        raise ScvaeError(f"{path}: no such run or model directory")
    for candidate in (path, path / CHECKPOINTS / "best", path / CHECKPOINTS / "last"):
        if (candidate / "config.json").is_file():
            return candidate
    raise ScvaeError(f"{path}: holds no model (expected config.json, or checkpoints/best|last inside a run dir)")


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> AutoencoderModel:
    """Load any model of the family from a run directory, a ``save_pretrained`` directory or a Hub repo id."""
    from ..models.hub import looks_like_repo_id

    if looks_like_repo_id(str(path)):  # owner/name that is no local path
        return AutoencoderModel.from_pretrained(str(path), map_location=map_location)
    return AutoencoderModel.from_pretrained(resolve_model_dir(path), map_location=map_location)
