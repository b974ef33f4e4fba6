"""Fixed DCT dictionaries over the latent channels.

A d-dimensional latent vector (d = n * n) is read as an n x n "patch" and written as a
combination of 2-D DCT atoms. Columns of the returned matrix are the atoms: D has shape (d, K).
"""
from __future__ import annotations

import math

import torch

from ..errors import ScvaeError


def _side(dim: int) -> int:
    n = math.isqrt(dim)
    if n * n != dim:
        raise ScvaeError(f"a DCT dictionary needs a latent dim that is a perfect square (n*n), got {dim}")
    return n


def _overcomplete_1d(n: int, m: int) -> torch.Tensor:
    """(n, m) overcomplete 1-D DCT of Deep K-SVD / the official code: cos(i k pi / m), non-DC columns centred."""
    i = torch.arange(n, dtype=torch.float64)[:, None]
    k = torch.arange(m, dtype=torch.float64)[None, :]
    d = torch.cos(i * k * math.pi / m)
    d[:, 1:] -= d[:, 1:].mean(dim=0, keepdim=True)
    return d / d.norm(dim=0, keepdim=True)


def _orthonormal_1d(n: int) -> torch.Tensor:
    """(n, n) orthonormal DCT-II basis, one atom per column."""
    i = torch.arange(n, dtype=torch.float64)[:, None]
    k = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (i + 0.5) * k / n)
    return d / d.norm(dim=0, keepdim=True)


def dct_dictionary(dim: int, n_atoms: int | None = None) -> torch.Tensor:
    """2-D DCT dictionary over ``dim`` latent channels, shape (dim, n_atoms), unit-norm columns, atom 0 constant.

    ``n_atoms == dim`` gives the complete orthonormal DCT-II basis (D^T D = I). ``n_atoms > dim`` gives
    the official code's overcomplete dictionary: the Kronecker square of an n x m overcomplete 1-D DCT,
    m = ceil(sqrt(n_atoms)), truncated to the first ``n_atoms`` columns (the paper's 256 x 512 for dim=256).
    """
    n = _side(dim)
    n_atoms = dim if n_atoms is None else int(n_atoms)
    if n_atoms < dim:
        raise ScvaeError(f"a DCT dictionary needs n_atoms >= dim ({dim}), got {n_atoms}")
    if n_atoms == dim:
        d1 = _orthonormal_1d(n)
    else:
        d1 = _overcomplete_1d(n, math.isqrt(n_atoms - 1) + 1)
    d2 = torch.kron(d1, d1)
    # The official code permutes rows from Fortran to C order (transposes the n x n index grid).
    d2 = d2.reshape(n, n, -1).transpose(0, 1).reshape(dim, -1)
    d2 = d2[:, :n_atoms]
    return (d2 / d2.norm(dim=0, keepdim=True)).float()


def spectral_norm_sq(dictionary: torch.Tensor) -> torch.Tensor:
    """||D||_2^2, the Lipschitz constant of the lasso's smooth part (a 0-d tensor)."""
    return torch.linalg.matrix_norm(dictionary.double(), ord=2).square().to(dictionary.dtype)
