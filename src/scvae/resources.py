"""Memory guards: estimate what a request will allocate and refuse, in one line, what cannot fit.

Every command that allocates by input size (a model's width from its config, an image's size from the
file or ``--size``) asks :func:`require_memory` first, so an impossible request ends in a one-line error
that says what would fit instead of a traceback, an out-of-memory kill or a swap storm.
"""
from __future__ import annotations

import os

import torch

from .errors import ScvaeError

HEADROOM = 0.8  # use at most this share of the memory that is free now
ADVICE_SHARE = 0.5  # a suggested size leaves half of that budget to spare, so it still fits minutes later
COMPUTE_LIMIT = 1e13  # FLOPs of one whole-image pass run only with --allow-slow: minutes on a laptop CPU


def available_bytes(device: torch.device | str = "cpu") -> int:
    """Memory free now on ``device``: the GPU's free memory, or the host's MemAvailable (Linux), else its
    free physical pages."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 2**62  # unknown: do not refuse


def fits(needed: int, device: torch.device | str = "cpu") -> bool:
    return needed <= HEADROOM * available_bytes(device)


def require_memory(needed: int, what: str, device: torch.device | str = "cpu", advice: str = "") -> None:
    """Raise a one-line :class:`ScvaeError` if ``needed`` bytes do not fit in :data:`HEADROOM` of the free
    memory; ``what`` names the request, ``advice`` says what would fit."""
    free = available_bytes(device)
    if needed > HEADROOM * free:
        raise ScvaeError(f"{what} needs about {format_bytes(needed)} but {format_bytes(free)} is free, of which "
                         f"scvae uses at most {HEADROOM:.0%}" + (f"; {advice}" if advice else ""))


def require_compute(flops: float, what: str, advice: str = "") -> None:
    """Raise a one-line :class:`ScvaeError` if one pass costs more than :data:`COMPUTE_LIMIT` FLOPs."""
    if flops > COMPUTE_LIMIT:
        raise ScvaeError(f"{what} needs about {flops / 1e12:.0f} TFLOP in one pass (hours on a laptop CPU, "
                         f"the limit is {COMPUTE_LIMIT / 1e12:.0f})" + (f"; {advice}" if advice else ""))


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1000
    raise AssertionError("unreachable")
