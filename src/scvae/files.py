"""Files written whole or not at all: a kill mid-write must never leave a torn config or record behind."""
from __future__ import annotations

import os
from pathlib import Path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a fsynced sibling temp file and ``os.replace``: readers (and a
    resume after ``kill -9``) see the old content or the new, never a truncated file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)  # the rename itself survives a power cut
    return path


def read_text_file(path: str | os.PathLike, missing: str = "missing", kind: str = "text") -> str:
    """The UTF-8 text of ``path``; a one-line :class:`ScvaeError` naming the file for a missing file
    (``missing`` says what that means), a folder, undecodable bytes or a read error (``kind``: what the
    file should hold)."""
    from .errors import ScvaeError

    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScvaeError(f"{path}: {missing}") from None
    except IsADirectoryError:
        raise ScvaeError(f"{path}: is a folder; expected a file of {kind}") from None
    except UnicodeDecodeError as exc:
        raise ScvaeError(f"{path}: not a UTF-8 text file (byte {exc.start}); expected {kind}") from None
    except OSError as exc:
        raise ScvaeError(f"{path}: cannot be read ({exc.strerror})") from None


def fsync_dir(folder: str | os.PathLike) -> None:
    """Flush a directory's entries (renames, new files) to disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ordinary_mode(path: str | os.PathLike) -> None:
    """Give ``path`` the mode a plain ``open()`` would (0666 less the umask): safetensors creates its
    files 0600, unlike every other output."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
