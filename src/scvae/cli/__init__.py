"""Command-line interface (``scvae``, ``python -m scvae``, ``python -m scvae.cli``); see :mod:`scvae.cli.app`."""
from .app import main

__all__ = ["main"]
