"""Command-line interface (``scvae``, ``python -m scvae``)."""
from __future__ import annotations

__all__ = ["main"]


def __getattr__(name: str):
    # imported on first use, so that ``python -m scvae.cli.main`` does not find the module already loaded
    if name == "main":
        from .main import main

        globals()["main"] = main  # the submodule import bound the name to the module; rebind the function
        return main
    raise AttributeError(name)
