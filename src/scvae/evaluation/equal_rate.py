"""Comparing two families at equal rate: one family's PSNR against the other's curve at the same bits.

Rate-distortion points are dicts with ``family``, ``bits_per_image``, ``psnr`` and ``setting`` (a list of
``KEY=VALUE`` overrides, as ``bench/rd_points.py`` writes, or a dict of them, as ``scvae rd`` writes). Runs
of one setting that differ only by ``seed=`` are averaged (bits and PSNR) before anything is compared, so a
lucky seed neither sets the baseline's curve nor the margin. The baseline's curve is its upper concave
envelope (the hull of its settings from above: no setting has fewer bits and a higher PSNR, and none lies
under the line joining two others, which time-sharing between those two would reach), read off linearly in
bits between its two neighbouring settings; outside its range of rates there is no margin. Adding a point
can only raise it.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def upper_envelope(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(bits, psnr) pairs -> the corners of their upper concave hull, sorted by bits: those that no other
    pair beats with as few bits and that lie above the line joining their neighbours."""
    best, front = float("-inf"), []
    for bits, psnr in sorted(points, key=lambda p: (p[0], -p[1])):
        if psnr <= best:
            continue
        best = psnr
        while len(front) >= 2:  # the middle of the last three is under the line from first to third: drop it
            (b0, p0), (b1, p1) = front[-2], front[-1]
            if (p1 - p0) * (bits - b0) > (psnr - p0) * (b1 - b0):
                break
            front.pop()
        front.append((bits, psnr))
    return front


def setting_label(point: dict[str, Any]) -> str:
    """The point's setting without its seed, as one string of sorted items (the order the overrides were
    given in does not make two settings); ``"preset"`` if it has none."""
    setting = point.get("setting") or []
    items = [f"{k}={v}" for k, v in setting.items()] if isinstance(setting, dict) else list(setting)
    return " ".join(sorted(i for i in items if not i.startswith("seed="))) or "preset"


def seed_means(points: list[dict[str, Any]], family: str) -> list[dict[str, Any]]:
    """``family``'s settings, each with its runs' mean ``bits``, mean ``psnr`` and the ``runs`` themselves
    ((bits, psnr) per seed), by bits."""
    groups: dict[str, list[tuple[float, float]]] = {}
    for p in points:
        if p["family"] == family:
            groups.setdefault(setting_label(p), []).append((p["bits_per_image"], p["psnr"]))
    means = [{"setting": label, "seeds": len(runs), "bits": sum(b for b, _ in runs) / len(runs),
              "psnr": sum(q for _, q in runs) / len(runs), "runs": runs} for label, runs in groups.items()]
    return sorted(means, key=lambda m: m["bits"])


def envelope_at(front: list[tuple[float, float]], bits: float) -> float | None:
    """PSNR of the envelope ``front`` (sorted (bits, psnr)) at ``bits``, linear between its neighbours; None
    outside its range."""
    if not front or not front[0][0] <= bits <= front[-1][0]:
        return None
    return float(np.interp(bits, [b for b, _ in front], [p for _, p in front]))


OTHERS = "others"  # ``against`` for the envelope of every family but ``family``


def equal_rate_margins(points: list[dict[str, Any]], family: str, against: str) -> list[dict[str, Any]]:
    """For each seed-averaged setting of ``family``: ``against``'s envelope at its rate (``baseline``), and
    ``margin`` = its mean PSNR minus that (dB; None outside ``against``'s range). ``margins`` gives each seed's
    own difference from the baseline at that seed's rate, so the spread between seeds shows. ``against`` may
    be :data:`OTHERS`: the envelope of the seed means of every other family together."""
    families = sorted({p["family"] for p in points} - {family}) if against == OTHERS else [against]
    front = upper_envelope([(m["bits"], m["psnr"]) for f in families for m in seed_means(points, f)])
    if not front:
        raise ValueError(f"no points of {against!r} to compare with")
    rows = []
    for m in seed_means(points, family):
        baseline = envelope_at(front, m["bits"])
        at_own_rate = [(psnr, envelope_at(front, bits)) for bits, psnr in m["runs"]]
        rows.append({**m, "baseline": baseline,
                     "margin": None if baseline is None else m["psnr"] - baseline,
                     "margins": [None if b is None else p - b for p, b in at_own_rate]})
    return rows
