"""``scvae eval``'s computation: whole-set metrics and diagnostics of one model, as a JSON-ready result,
and the Markdown helpers the written reports share (the files: :mod:`scvae.reporting.command_files`)."""
from __future__ import annotations

import os
import platform
import re
from typing import Any

import torch

from ..data import CropDataset, open_images
from ..errors import ScvaeError
from ..resources import require_memory
from ..models import AutoencoderModel
from .perceptual import MetricWeights, score_dataset
from .rate import estimate_rate
from .reconstruction import evaluate_reconstruction

CONVENTIONS = {
    "image_range": "[0, 1] (model outputs clamped to [-1, 1], then (x + 1) / 2)",
    "psnr": "10 log10(1 / MSE) per image, averaged over images",
    "ssim": "torchmetrics SSIM map, Gaussian window 11, sigma 1.5, data_range 1, averaged over the valid "
            "region (5-px border excluded, as scikit-image), per image, then over images",
    "ms_ssim": "torchmetrics multiscale SSIM (5 scales, window 11), when images are >= 161 px",
    "rate": "bits per image: entropy of code indices (VQ; FSQ, or the sum of its dimensions' level entropies "
            "for large codebooks); sum of the stages' index entropies (residual VQ); per-channel entropy of codes "
            "quantised with the model's step, else the largest step costing <= 0.1 dB PSNR (SC-VAE, AE); KL in "
            "bits (VAE); see scvae.evaluation.rate",
    "resize": "shorter side resized to the crop size (the model resolution, or --size), bicubic, antialiased, "
              "then a centre crop of that size",
}


def package_versions() -> dict[str, str]:
    import numpy
    import torchmetrics

    from .. import __version__

    return {"scvae": __version__, "torch": torch.__version__, "torchmetrics": torchmetrics.__version__,
            "numpy": numpy.__version__, "python": platform.python_version()}


@torch.no_grad()
def evaluate_source(model: AutoencoderModel, source: str | os.PathLike, batch_size: int = 64,
                    limit: int | None = None, metric_weights: MetricWeights | None = None,
                    device: str | torch.device = "cpu", size: int | None = None) -> dict[str, Any]:
    """Evaluate ``model`` on every image of ``source`` at ``size`` x ``size`` centre crops (default: the
    model's resolution; any multiple of the downsampling factor, since the model is fully convolutional);
    returns the JSON-ready result. LPIPS and rFID are computed when ``metric_weights`` (or the environment)
    names their local weights files."""
    size = size or model.resolution
    if size % model.downsampling_factor:
        raise ScvaeError(f"--size must be a multiple of {model.downsampling_factor} (the downsampling factor), "
                         f"got {size}")
    require_memory(model.activation_bytes(size, size, batch_size), f"evaluating {size}x{size} px crops in batches "
                   f"of {batch_size}", device, "lower --size or --batch-size")
    images, names = open_images(source, size, model.in_channels)
    dataset = CropDataset(images, size, names, random_crop=False)
    report = evaluate_reconstruction(model, dataset, batch_size, limit, device)
    rate = estimate_rate(model, dataset, batch_size, limit, device=device)
    metrics: dict[str, Any] = {"psnr": report.psnr, "ssim": report.ssim, "bits_per_image": rate.bits_per_image,
                               "bits_per_pixel": rate.bits_per_pixel}
    scores, skipped = score_dataset(model, dataset, metric_weights, batch_size, limit, device)
    metrics.update(scores)
    return {"model_type": model.model_type, "usage_unit": "atom" if model.sparse_codes else "code",
            "parameters": sum(p.numel() for p in model.parameters()),
            "data": {"source": str(source), "n_images": report.n_images, "resolution": model.resolution,
                     "crop_size": size},
            "metrics": metrics, "rate": rate.to_dict(), "diagnostics": report.diagnostics, "usage_counts": report.usage_counts,
            "skipped": skipped, "conventions": CONVENTIONS, "versions": package_versions()}




_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|~])")  # what makes emphasis, code, links, HTML, cells


def markdown_text(text: Any) -> str:
    """``text`` (a folder name, a path) as literal Markdown: markup characters escaped, control characters
    (terminal escape sequences, line breaks) shown as \\xNN."""
    text = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in str(text))
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def markdown_table(rows: dict[str, dict[str, Any]], columns: list[str]) -> str:
    """A Markdown table with one row per entry of ``rows`` (floats to 4 significant digits); row names and
    text cells are escaped (:func:`markdown_text`)."""
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else markdown_text(v)

    lines = ["| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in rows.items():
        lines.append(f"| {markdown_text(name)} | " + " | ".join(fmt(row.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"
