"""ONNX export of any model of the family as two graphs with dynamic batch and spatial sizes:

- ``encoder.onnx``: images (B, C, H, W) in [-1, 1] -> codes (SC-VAE: the sparse codes (B, K, H/f, W/f),
  LISTA and the ``max_active`` cap included; VQ-VAE / FSQ: indices (B, H/f, W/f); AE / VAE: latents);
- ``decoder.onnx``: codes -> images (B, C, H, W), unclamped, as :meth:`decode` returns them.

Needs the optional ``onnx`` extra (``pip install scvae[onnx]``: onnx, onnxruntime).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from ..errors import ScvaeError
from ..models import AutoencoderModel

OPSET = 17


class _Method(nn.Module):
    """One method of the model (``encode`` or ``decode``) as a module's forward, for the exporter."""

    def __init__(self, model: AutoencoderModel, method: str):
        super().__init__()
        self.model, self.method = model, method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self.model, self.method)(x, return_dict=False)[0]


def export_onnx(model: AutoencoderModel, out: str | os.PathLike) -> dict[str, Path]:
    """Write ``out/encoder.onnx`` and ``out/decoder.onnx`` for ``model``; returns their paths."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ScvaeError("ONNX export needs the onnx package: pip install 'scvae[onnx]'") from None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval().float()
    f = model.downsampling_factor
    images = torch.rand(2, model.in_channels, 2 * f * 4, 3 * f * 4) * 2 - 1
    with torch.no_grad():
        codes = model.encode(images).codes
    spatial = {0: "batch", 2: "height", 3: "width"}
    code_axes = {0: "batch", 1: "h", 2: "w"} if codes.dim() == 3 else {0: "batch", 2: "h", 3: "w"}
    paths = {"encoder": out / "encoder.onnx", "decoder": out / "decoder.onnx"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Method(model, "encode").eval(), (images,), str(paths["encoder"]), input_names=["images"],
                          output_names=["codes"], dynamic_axes={"images": spatial, "codes": code_axes},
                          opset_version=OPSET, dynamo=False)
        torch.onnx.export(_Method(model, "decode").eval(), (codes,), str(paths["decoder"]), input_names=["codes"],
                          output_names=["images"], dynamic_axes={"codes": code_axes, "images": spatial},
                          opset_version=OPSET, dynamo=False)
    return paths
