"""``python -m scvae.cli.main``, kept for old launch lines; the CLI lives in :mod:`scvae.cli.app`.

Import ``scvae.cli.app`` (or ``from scvae.cli import main``), not this module: importing it binds the name
``scvae.cli.main`` to this module instead of the function.
"""
import sys

from scvae.cli.app import main

if __name__ == "__main__":
    sys.exit(main())
