"""The autoencoder family: SC-VAE (and baselines) on one taming-style backbone, under one interface."""
from .backbone import Decoder, Encoder
from .ae import AE
from .base import MODEL_REGISTRY, AutoencoderModel, register_model
from .outputs import AutoencoderOutput, DecoderOutput, EncoderOutput
from .quantized import FSQVAE, VQVAE, QuantizedOutput, ResidualVQVAE, StrongVQVAE
from .scvae import SCVAE, SCVAEOutput
from .vae import VAE, VAEOutput

__all__ = ["Encoder", "Decoder", "AutoencoderModel", "AutoencoderOutput", "EncoderOutput", "DecoderOutput",
           "MODEL_REGISTRY", "register_model", "SCVAE", "SCVAEOutput", "VAE", "VAEOutput", "VQVAE", "AE", "StrongVQVAE", "FSQVAE", "ResidualVQVAE", "QuantizedOutput"]
