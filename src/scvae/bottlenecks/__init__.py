"""The bottlenecks other than SC-VAE's (:class:`scvae.sparse.SparseCodingBottleneck`), as drop-in modules with
its interface: ``out = bottleneck(z)`` for a latent z (B, d, h, w) gives ``out.latent_hat`` for the decoder,
``out.codes`` and ``out.loss`` (see :mod:`.base`).

=============================  =====================================================  ====================
bottleneck                     what it is                                             codes
=============================  =====================================================  ====================
:class:`VQBottleneck`          plain VQ-VAE, written out                              indices (B, h, w)
:class:`StrongVQBottleneck`    cosine VQ in a projection, EMA, k-means, restarts      indices (B, h, w)
:class:`FSQBottleneck`         finite scalar quantisation                             indices (B, h, w)
:class:`ResidualVQBottleneck`  residual VQ                                            indices (B, Q, h, w)
:class:`GaussianBottleneck`    the VAE's posterior                                    means (B, d, h, w)
:class:`IdentityBottleneck`    the AE's latent (optionally rounded, trained for rate)  latent (B, d, h, w)
=============================  =====================================================  ====================
"""
from .base import Bottleneck, BottleneckOutput, IndexSymbols
from .continuous import GaussianBottleneck, IdentityBottleneck, kl_per_dim
from .library import FSQBottleneck, ResidualVQBottleneck, StrongVQBottleneck, codebooks_from_global_batch
from .vq import VQBottleneck
from ..sparse import SparseCodingBottleneck

Bottleneck.register(SparseCodingBottleneck)  # SC-VAE's has the same interface; it lives with the sparse coding

__all__ = ["Bottleneck", "BottleneckOutput", "IndexSymbols", "VQBottleneck", "StrongVQBottleneck", "FSQBottleneck",
           "ResidualVQBottleneck", "GaussianBottleneck", "IdentityBottleneck", "kl_per_dim",
           "codebooks_from_global_batch"]
