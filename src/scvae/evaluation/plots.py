"""PNG figures (matplotlib, Agg backend): usage histograms and training curves."""
from __future__ import annotations

import os
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .equal_rate import upper_envelope  # noqa: E402


def usage_histogram(result: dict[str, Any], path: str | os.PathLike) -> None:
    """Atom (SC-VAE) or code (VQ-VAE) usage, sorted; KL per channel for a VAE."""
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=120)
    counts = result.get("usage_counts")
    if counts:
        total = max(1, sum(counts))
        ordered = sorted(counts, reverse=True)
        ax.bar(range(len(ordered)), [100 * c / total for c in ordered], width=1.0, color="#3b6ea5")
        unit = "atom" if result["model_type"] == "scvae" else "code"
        never = sum(1 for c in counts if c == 0)
        ax.set_xlabel(f"{unit} (sorted by use); {never} of {len(counts)} never used")
        ax.set_ylabel("% of all activations")
        ax.set_title(f"{result['model_type']}: {unit} usage over {result['data']['n_images']} images")
    else:
        kl = result["diagnostics"].get("kl_per_channel", [])
        ax.bar(range(len(kl)), kl, color="#a53b3b")
        ax.axhline(0.01, color="k", lw=0.8, ls="--")
        ax.set_xlabel("latent channel")
        ax.set_ylabel("KL per position (nats)")
        ax.set_title(f"vae: KL per channel ({result['diagnostics'].get('channels_collapsed', 0)} below 0.01)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def curves(series: dict[str, list[tuple[float, float]]], path: str | os.PathLike, ylabel: str, title: str,
           xlabel: str = "step", logx: bool = False,
           markers: dict[str, list[tuple[float, float]]] | None = None) -> None:
    """One line per named series of (x, y) points (sorted by x); ``markers`` adds unjoined points drawn in
    the colour of the series of the same name."""
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    for name, points in series.items():
        if points:
            xs, ys = zip(*sorted(points))
            line, = ax.plot(xs, ys, marker="o", ms=3, label=name)
            if markers and markers.get(name):
                mx, my = zip(*markers[name])
                ax.plot(mx, my, ls="none", marker="x", ms=4, color=line.get_color(), alpha=0.6)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def rate_distortion_figure(points: list[dict], path: str | os.PathLike, title: str) -> None:
    """PSNR against bits per image (log scale) of points with ``family``, ``bits_per_image`` and ``psnr``:
    a line through each family's best operating points (its upper envelope), a cross at every other point."""
    every: dict[str, list[tuple[float, float]]] = {}
    for p in points:
        every.setdefault(p["family"], []).append((p["bits_per_image"], p["psnr"]))
    curves({f: upper_envelope(pts) for f, pts in every.items()}, path, "held-out PSNR (dB)",
           f"{title}\n(lines: each family's best points; x: its other points)",
           xlabel="bits per image (log scale)", logx=True, markers=every)


def labelled_rows(rows: list, labels: list[str], path: str | os.PathLike, title: str = "") -> None:
    """One row of images per entry of ``rows`` (each (N, C, H, W) in [-1, 1]), named on the left by ``labels``."""
    n = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.1 * n + 1.6, 1.1 * len(rows) + 0.4), dpi=110, squeeze=False)
    for i, (batch, label) in enumerate(zip(rows, labels)):
        for j in range(n):
            ax = axes[i][j]
            ax.set_xticks([]), ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(batch):
                image = ((batch[j].detach().float().cpu().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()
                ax.imshow(image[:, :, 0] if image.shape[2] == 1 else image, cmap="gray", interpolation="nearest")
        axes[i][0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
