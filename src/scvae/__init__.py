"""scvae: SC-VAE, the sparse-coding variational autoencoder with learned ISTA, as a library and CLI."""
from .config import RunConfig, TrainConfig, build_model, resolve_config
from .errors import ScvaeError
from .models import MODEL_REGISTRY, SCVAE, AutoencoderModel, SCVAEOutput
from .presets import PRESETS
from .sparse import LISTA, dct_dictionary, fista, ista, lasso_objective, soft_threshold
from .training import load_model, train

__version__ = "0.1.0"
__all__ = ["RunConfig", "TrainConfig", "build_model", "resolve_config", "ScvaeError", "MODEL_REGISTRY",
           "SCVAE", "AutoencoderModel", "SCVAEOutput", "PRESETS", "LISTA", "dct_dictionary", "fista", "ista",
           "lasso_objective", "soft_threshold", "load_model", "train", "__version__"]
