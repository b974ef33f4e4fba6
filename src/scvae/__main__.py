"""``python -m scvae``: the command line, e.g. under ``torchrun --nproc_per_node=N -m scvae train ...``."""
import sys

from scvae.cli.app import main

sys.exit(main())
