"""Every PNG figure (matplotlib, Agg backend): usage histograms, curves, rate-distortion, image rows, label
maps and overlays, overlay panels, dictionary atoms. One module, below every room that draws."""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from .equal_rate import upper_envelope  # noqa: E402


def usage_histogram(result: dict[str, Any], path: str | os.PathLike) -> None:
    """Atom (SC-VAE) or code (VQ-VAE) usage, sorted; KL per channel for a VAE."""
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=120)
    counts = result.get("usage_counts")
    if counts:
        total = max(1, sum(counts))
        ordered = sorted(counts, reverse=True)
        ax.bar(range(len(ordered)), [100 * c / total for c in ordered], width=1.0, color="#3b6ea5")
        unit = result.get("usage_unit", "code")
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
    fig, ax = plt.subplots(figsize=(7.2, 3.6), dpi=120)
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
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8, frameon=False)  # beside the data
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


def palette(n: int) -> np.ndarray:
    """(n, 3) uint8 distinct colours (matplotlib's tab20, then a seeded random extension)."""
    base = (np.array(plt.get_cmap("tab20").colors) * 255).round().astype(np.uint8)
    base = np.concatenate([base[0::2], base[1::2]])  # the 10 strong colours first
    if n <= len(base):
        return base[:n]
    extra = np.random.default_rng(0).integers(0, 256, (n - len(base), 3), dtype=np.uint8)
    return np.concatenate([base, extra])


def _dense_ids(labels: np.ndarray) -> np.ndarray:
    """Arbitrary non-negative ids (e.g. colour-coded classes) -> 0..n-1, in sorted order."""
    return np.unique(labels, return_inverse=True)[1].reshape(labels.shape)


def colorize(labels: np.ndarray) -> np.ndarray:
    """Label map (H, W) -> uint8 RGB (H, W, 3). Ids 0-255 keep their own colour in every picture (and in
    :func:`save_labels`), so matched clusters and classes look alike; other ids are renumbered first."""
    ids = labels if labels.size and 0 <= labels.min() and labels.max() < 256 else _dense_ids(labels)
    return palette(int(ids.max()) + 1)[ids]


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """uint8 image (H, W, C) blended with the coloured labels, cluster boundaries drawn in white."""
    from skimage.segmentation import find_boundaries

    rgb = image if image.shape[2] == 3 else np.repeat(image, 3, axis=2)
    out = (1 - alpha) * rgb.astype(np.float32) + alpha * colorize(labels).astype(np.float32)
    out[find_boundaries(labels, mode="inner")] = 255
    return out.round().astype(np.uint8)


def save_labels(labels: np.ndarray, path: str | os.PathLike) -> None:
    """A palette PNG: pixel values are the cluster ids (machine-readable), shown in colour."""
    ids = labels.astype(np.uint8) if labels.max() < 256 else _dense_ids(labels).astype(np.uint8)
    img = Image.fromarray(ids, mode="P")
    img.putpalette(palette(256).ravel().tolist())
    img.save(path)


def save_rgb(array: np.ndarray, path: str | os.PathLike) -> None:
    Image.fromarray(array if array.shape[2] == 3 else array[:, :, 0]).save(path)


def panel_figure(rows: Sequence[Sequence[np.ndarray]], titles: Sequence[str], path: str | os.PathLike,
                 row_labels: Sequence[str] | None = None, height: float = 1.9,
                 legend: Mapping[int, str] | None = None) -> None:
    """A grid of uint8 images (one row per image, one titled column per view) saved as PNG. ``legend``
    (label id -> name) adds a key of the ids' :func:`colorize` colours under the grid."""
    n_rows, n_cols = len(rows), len(titles)
    aspect = max(r[0].shape[1] / r[0].shape[0] for r in rows)
    per_line = max(1, min(len(legend or ()), 2 * n_cols))
    key_height = 0.25 * -(-len(legend or ()) // per_line)  # inches: one line of names per per_line entries
    size = (n_cols * height * aspect, n_rows * height + 0.4 + key_height)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=size, dpi=110, squeeze=False)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            ax = axes[i, j]
            ax.imshow(img if img.ndim == 3 and img.shape[2] == 3 else img.squeeze(), cmap="gray",
                      interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(titles[j], fontsize=9)
            if j == 0 and row_labels:
                ax.set_ylabel(row_labels[i], fontsize=7)
    if legend:
        from matplotlib.patches import Patch

        colours = palette(max(legend) + 1) / 255
        fig.legend(handles=[Patch(facecolor=colours[i], edgecolor="0.4", label=name) for i, name in legend.items()],
                   loc="lower center", ncol=per_line, fontsize=7, frameon=False, handlelength=1.2, columnspacing=1.0)
    fig.tight_layout(rect=(0, key_height / fig.get_figheight(), 1, 1))
    fig.savefig(path)
    plt.close(fig)


def dictionary_image(dictionary: torch.Tensor, path: str | os.PathLike, upscale: int = 6) -> None:
    """The atoms of a (d, K) dictionary, each shown as its n x n patch (d = n * n), in a square grid."""
    d, k = dictionary.shape
    n = int(round(d ** 0.5))
    if n * n != d:
        raise ValueError(f"atoms of dimension {d} are not square patches")
    atoms = dictionary.detach().float().cpu().T.reshape(k, n, n)
    atoms = atoms / atoms.abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)  # each in [-1, 1]
    cols = int(np.ceil(np.sqrt(k)))
    rows = int(np.ceil(k / cols))
    cell = n * upscale + 2
    canvas = np.full((rows * cell + 2, cols * cell + 2), 255, dtype=np.uint8)
    for i in range(k):
        r, c = divmod(i, cols)
        tile = ((atoms[i].numpy() + 1) * 127.5).round().astype(np.uint8)
        tile = np.kron(tile, np.ones((upscale, upscale), dtype=np.uint8))
        canvas[2 + r * cell:2 + r * cell + n * upscale, 2 + c * cell:2 + c * cell + n * upscale] = tile
    Image.fromarray(canvas).save(path)


def training_curves(rows: Sequence[dict], path: str | os.PathLike) -> None:
    """Panels of the logged metrics (metrics.jsonl rows): loss, PSNR (train and val), SSIM, active atoms."""
    panels = [("loss", ["train"], "training loss"), ("psnr", ["train", "val"], "PSNR (dB)"),
              ("ssim", ["val"], "validation SSIM"), ("active_frac", ["val"], "active atoms per code (fraction)"),
              ("atoms_used_frac", ["val"], "atoms ever used (fraction)"), ("codebook_usage", ["val"], "codebook usage"),
              ("active_units_frac", ["val"], "active units (fraction)")]
    def informative(key: str, splits: list[str]) -> bool:  # present, and not flat (a hard cap keeps some flat)
        values = [r[key] for r in rows if r.get("split") in splits and key in r]
        return bool(values) and (key in ("loss", "psnr", "ssim") or max(values) - min(values) > 1e-3 * max(1.0, max(values)))

    shown = [(key, splits, title) for key, splits, title in panels if informative(key, splits)]
    cols = min(3, max(1, len(shown)))
    n_rows = max(1, -(-len(shown) // cols))
    fig, axes = plt.subplots(n_rows, cols, figsize=(3.8 * cols, 2.9 * n_rows), dpi=110, squeeze=False)
    for ax in axes.ravel()[len(shown):]:
        ax.axis("off")
    for ax, (key, splits, title) in zip(axes.ravel(), shown):
        for split in splits:
            points = [(r["step"], r[key]) for r in rows if r.get("split") == split and key in r]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker="o" if split == "val" else None, ms=3, label=split)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
        if key == "loss":
            ax.set_yscale("log")
        if len(splits) > 1:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
