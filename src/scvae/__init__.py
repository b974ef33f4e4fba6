"""scvae: SC-VAE, the sparse-coding variational autoencoder with learned ISTA, as a library and CLI.

The names below are imported on first use (PEP 562), so ``scvae --help`` does not wait for torch.
"""
from __future__ import annotations

import importlib
import logging
from typing import Any

from .errors import ScvaeError

__version__ = "0.1.0"
# The library logs (training progress, validation results) to the "scvae" logger and never prints; it is
# silent until the application configures logging. The CLI shows INFO lines on stderr.
logging.getLogger("scvae").addHandler(logging.NullHandler())
_EXPORTS = {
    ".config": ["RunConfig", "TrainConfig", "build_model", "resolve_config"],
    ".data": ["image_tensor"],
    ".models": ["MODEL_REGISTRY", "SCVAE", "AutoencoderModel", "SCVAEOutput"],
    ".presets": ["PRESETS"],
    ".sparse": ["LISTA", "dct_dictionary", "fista", "ista", "lasso_objective", "soft_threshold"],
    ".training": ["load_model", "train"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = ["ScvaeError", "__version__", *_WHERE]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'scvae' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
