"""Command-line interface (``scvae``)."""
from .main import main

__all__ = ["main"]
