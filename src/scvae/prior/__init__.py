"""Stage 2: a learned prior over any family's code symbols, for generation and for the shortest files.

- :mod:`.layout`: symbol maps (B, C, h, w) as per-position entry lists (dense families: every channel;
  SC-VAE: its active atoms, with values);
- :mod:`.network`: the autoregressive network, the same for every family;
- :mod:`.training`: fitting it, its held-out bits, its files; :mod:`.fit`: the one call from a model;
- :mod:`.walk`: the autoregressive traversal sampling and coding share; :mod:`.sampling`: drawing codes and
  decoding them; :mod:`.coding`: files coded with the prior.
"""
from .fit import fit_prior, prior_from_symbols, prior_layout
from .layout import Entries, EntryLayout
from .network import PriorConfig, PriorNetwork
from .sampling import PriorSamples, generate_from_prior, sample_symbols
from .training import LearnedPrior, PriorTraining

__all__ = ["Entries", "EntryLayout", "LearnedPrior", "PriorConfig", "PriorNetwork", "PriorSamples", "PriorTraining",
           "fit_prior", "generate_from_prior", "prior_from_symbols", "prior_layout", "sample_symbols"]
