"""Output paths claimed before any work: no command writes over an input, over an existing output
(without ``--overwrite``), or twice to the same file in one run."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Sequence

from ..errors import ScvaeError


def claim_outputs(targets: Sequence[Path], inputs: Sequence[Path] = (), *, overwrite: bool = False,
                  sources: Sequence[Path] | None = None) -> list[Path]:
    """Check that writing every path in ``targets`` loses nothing, then create their folders.

    ``sources[i]``, when given, is the input that produces ``targets[i]``: it names the two inputs
    whose outputs would collide. Raises a one-line :class:`ScvaeError` naming the path otherwise.
    """
    resolved_inputs = {_key(p): p for p in inputs}
    seen: dict[str, int] = {}
    for i, target in enumerate(targets):
        key = _key(target)
        if key in resolved_inputs:
            raise ScvaeError(f"{target}: output would overwrite the input {resolved_inputs[key]}; choose another --out")
        if key in seen:
            j = seen[key]
            who = f"{sources[j]} and {sources[i]}" if sources else "two outputs"
            raise ScvaeError(f"{who} would both be written to {target}; rename one or run them separately")
        seen[key] = i
        if target.is_dir():
            raise ScvaeError(f"{target}: is a directory, expected a file path")
        if target.exists() and not overwrite:
            raise ScvaeError(f"{target}: already exists; pass --overwrite to replace it")
        _check_folder(target.parent)
    for target in targets:
        make_folder(target.parent)
    return list(targets)


_created: list[Path] = []  # folders this command made; a refused command removes them again while empty


def make_folder(folder: Path) -> None:
    """``mkdir -p folder``, remembering the topmost folder it created for :func:`remove_created_folders`."""
    top, probe = None, Path(folder)
    while not probe.exists() and probe.parent != probe:
        top, probe = probe, probe.parent
    folder.mkdir(parents=True, exist_ok=True)
    if top is not None:
        _created.append(top)


def remove_created_folders() -> None:
    """After a refusal: remove each folder :func:`make_folder` created that still holds no file, so a refused
    command leaves the disk as it found it."""
    for top in reversed(_created):
        if top.is_dir() and not any(p.is_file() or p.is_symlink() for p in top.rglob("*")):
            shutil.rmtree(top, ignore_errors=True)
    _created.clear()


def forget_created_folders() -> None:
    """After a command that finished: its folders are its output."""
    _created.clear()


def _key(path: Path) -> str:
    return os.path.normcase(os.path.realpath(path))


def _check_folder(folder: Path) -> None:
    """The folder (or its nearest existing ancestor) must be a writable directory."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise ScvaeError(f"{probe}: is a file, not a folder to write into")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ScvaeError(f"{probe}: folder is not writable")
