"""Reference lasso solvers with no learned parameters: the ground truth LISTA is tested against.

All solve, independently for each row z of a batch, min_a 1/2 ||z - D a||^2 + lam ||a||_1
with z of shape (N, d), D of shape (d, K), and return codes of shape (N, K).
"""
from __future__ import annotations

import torch

from .dictionary import spectral_norm_sq


def soft_threshold(x: torch.Tensor, threshold: torch.Tensor | float) -> torch.Tensor:
    """sign(x) * max(|x| - threshold, 0), element-wise (threshold broadcasts)."""
    return torch.sign(x) * torch.relu(x.abs() - threshold)


def lasso_objective(z: torch.Tensor, dictionary: torch.Tensor, codes: torch.Tensor, lam: float) -> torch.Tensor:
    """Per-row lasso objective 1/2 ||z - D a||^2 + lam ||a||_1, shape (N,)."""
    residual = z - codes @ dictionary.T
    return 0.5 * residual.square().sum(-1) + lam * codes.abs().sum(-1)


def ista(z: torch.Tensor, dictionary: torch.Tensor, lam: float, n_iter: int = 1000,
         tol: float = 0.0, step: float | None = None) -> torch.Tensor:
    """Iterative shrinkage-thresholding from a = 0 with step 1/L, L = ||D||_2^2 (or 1/step).

    Stops early when the largest code change in the batch falls below ``tol``.
    """
    L = float(spectral_norm_sq(dictionary)) if step is None else 1.0 / step
    gram = dictionary.T @ dictionary
    b = z @ dictionary
    a = torch.zeros(z.shape[0], dictionary.shape[1], dtype=z.dtype, device=z.device)
    for _ in range(n_iter):
        a_next = soft_threshold(a - (a @ gram - b) / L, lam / L)
        done = tol > 0 and (a_next - a).abs().max() < tol
        a = a_next
        if done:
            break
    return a


def fista(z: torch.Tensor, dictionary: torch.Tensor, lam: float, n_iter: int = 500,
          tol: float = 0.0) -> torch.Tensor:
    """FISTA (Beck & Teboulle 2009): ISTA with Nesterov momentum, O(1/k^2) in the objective."""
    L = float(spectral_norm_sq(dictionary))
    gram = dictionary.T @ dictionary
    b = z @ dictionary
    a = torch.zeros(z.shape[0], dictionary.shape[1], dtype=z.dtype, device=z.device)
    y, t = a, 1.0
    for _ in range(n_iter):
        a_next = soft_threshold(y - (y @ gram - b) / L, lam / L)
        t_next = (1.0 + (1.0 + 4.0 * t * t) ** 0.5) / 2.0
        y = a_next + ((t - 1.0) / t_next) * (a_next - a)
        done = tol > 0 and (a_next - a).abs().max() < tol
        a, t = a_next, t_next
        if done:
            break
    return a
