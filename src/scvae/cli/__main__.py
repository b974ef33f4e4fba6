"""``python -m scvae.cli``: the same as ``python -m scvae`` and the ``scvae`` command."""
import sys

from scvae.cli.app import main

sys.exit(main())
