"""Learned ISTA: a fixed number of unrolled soft-threshold iterations with learnable step and thresholds.

Fixes over the official SC-VAE layer: the first iterate is soft(D^T z / c, lam / c) (true ISTA from
a = 0), the step 1/c is kept <= 1/||D||_2^2 so the iterations never diverge, thresholds are bounded
below by ``lam`` (the sparsity control) and the iterations run in float32 even under autocast.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..collective import all_gather_rows, all_reduce_sum, broadcast_from_main
from .dictionary import spectral_norm_sq
from .refit import REFIT_RIDGE, refit_on_support
from .solvers import soft_threshold
from .unrolled_ista import unrolled_ista

# The defaults of every layer that runs LISTA (LISTA, SparseCodingBottleneck, SCVAE), defined once here
N_ITER = 4  # T, the small presets' choice (docs/design.md)
LAM = 0.3  # the threshold floor, on the RMS-normalised latent
_INIT_RAW = -6.0  # softplus(-6) ~ 0.0025: learnable offsets start (almost) at their floor


@dataclass
class LISTAOutput:
    """codes (N, K): the sparse codes; preactivation (N, K): the last iterate before thresholding;
    threshold (K,): the last soft threshold, in the same units as ``preactivation``."""

    codes: torch.Tensor
    preactivation: torch.Tensor
    threshold: torch.Tensor


class LISTA(nn.Module):
    """Unrolled ISTA for min_a 1/2 ||z - D a||^2 + lam ||a||_1, applied row-wise to z (N, d) -> a (N, K).

    Args:
        dictionary: (d, K) initial atoms (columns), e.g. ``dct_dictionary(d, K)``.
        n_iter: T, the number of soft-threshold iterations (T = 1 is a single shrinkage of D^T z / c).
        lam: the l1 weight and the floor of every learnable threshold. On a scale-normalised latent this
            is the knob that decides how sparse the codes are.
        learn_dictionary: learn D (columns renormalised to unit norm in every forward) instead of keeping
            the predetermined atoms fixed.
        learn_step: learn c = ||D||_2^2 * (1 + softplus(rho)) >= ||D||_2^2, so the step 1/c stays safe.
        learn_threshold: learn lam_t = lam + softplus(p) >= lam.
        threshold_per_atom: one threshold per atom instead of a shared scalar.
        per_iteration: one step size and threshold per iteration (ALISTA-style) instead of tied ones.
        untied: Gregor & LeCun's LISTA with free per-iteration matrices W_t (K, d) and S_t (K, K),
            initialised at D^T / c and I - D^T D / c.
        max_active: optional hard cap k on the number of non-zeros per code (default None, no cap: a layer does
            not know which k suits its K; :class:`~scvae.models.SCVAE` caps at 33 of 256, and with the cap turns
            ``refit`` and ``balance_step`` on, which need it): after the T iterations only
            the k largest-magnitude entries are kept (gradients flow through the kept ones). Unrolled ISTA
            on a coherent dictionary is far from converged after T steps and leaves many small non-zeros;
            the cap is the explicit "target number of active atoms" sparsity control.
        dead_atom_threshold: with a learned dictionary, :meth:`restart_dead_atoms` (after the optimizer
            step) replaces every atom whose exponential moving average of activations per batch
            (kept by :meth:`update_usage`) falls below this count by the
            normalised residual z - D a of one of the worst-represented rows (K-SVD's remedy for unused
            atoms, the dictionary's analogue of a VQ dead-code restart). 0 disables it.
        usage_decay: the decay of that moving average.
        usage_floor: the usage below which an atom's selection bias grows (see ``balance_step``).
        balance_step: loss-free usage balancing of the ``max_active`` selection (the
            auxiliary-loss-free load balancing of mixture-of-experts routers, DeepSeek-V3): a per-atom
            bias is added to |a| when choosing which non-zeros to keep, never to the kept values. With
            every training batch (:meth:`update_usage`) the bias of each atom selected at fewer than
            ``usage_floor`` x the uniform share (max_active / K) of positions grows by ``balance_step``;
            that of every other atom shrinks by it, down to 0. Unused atoms are thus pulled back into
            the codes without any loss term. ``balance_step`` 0 disables it.
        grad_iterations: backpropagate through only the last m of the T iterations (memory O(m) instead of
            O(T), see :func:`~scvae.sparse.unrolled_ista.unrolled_ista`); None: all of them. Tied LISTA only.
        refit: after the ``max_active`` selection, replace the kept values by the least-squares fit of z on
            the kept atoms (:func:`refit_on_support`, the last step of OMP). Soft thresholding shrinks
            every kept value by its threshold; the refit removes that bias, so D a is the best
            approximation of z that the chosen support allows. LISTA then only chooses the support, so its
            step and thresholds get no gradient and stay fixed. Needs ``max_active``; tied LISTA only.
        refit_ridge: the ridge of that least-squares fit (unit-norm atoms, so it is relative to the
            sub-Gram's mean eigenvalue, 1): it bounds every code by |a| <= ||z|| / (2 sqrt(ridge)) and the
            systems' condition number by (k + ridge) / ridge (see :mod:`scvae.sparse.refit`).
        recompute_backward: the exact gradient through all T iterations in memory that does not grow with T:
            the backward recomputes the iterates a chunk of rows at a time (``recompute`` of
            :func:`~scvae.sparse.unrolled_ista.unrolled_ista`), at the cost of one more forward pass.
        support_grad: with ``refit``, still run the iterations under autograd, so the last preactivation
            carries a gradient to z (what a rate term on the support needs, see :mod:`scvae.sparse.rate`);
            the step and thresholds stay fixed.
    """

    def __init__(self, dictionary: torch.Tensor, n_iter: int = N_ITER, lam: float = LAM, *,
                 learn_dictionary: bool = False, learn_step: bool = True, learn_threshold: bool = True,
                 threshold_per_atom: bool = False, per_iteration: bool = False, untied: bool = False,
                 max_active: int | None = None, dead_atom_threshold: float = 0.0, usage_decay: float = 0.99,
                 usage_floor: float = 0.05, balance_step: float = 0.0, grad_iterations: int | None = None,
                 refit: bool = False, refit_ridge: float = REFIT_RIDGE, support_grad: bool = False,
                 recompute_backward: bool = False):
        super().__init__()
        self.support_grad = bool(support_grad)
        if refit and (max_active is None or untied):
            raise ValueError("refit fits the max_active kept atoms of tied LISTA: it needs max_active and "
                             "untied=False (or set refit=False)")
        self.refit = bool(refit)
        if not refit_ridge > 0:
            raise ValueError(f"refit_ridge must be > 0, got {refit_ridge}")
        self.refit_ridge = float(refit_ridge)
        if n_iter < 1:
            raise ValueError(f"n_iter must be >= 1, got {n_iter}")
        if not lam > 0:
            raise ValueError(f"lam must be > 0, got {lam}")
        dictionary = dictionary.detach().float().clone()
        if max_active is not None and not 1 <= max_active <= dictionary.shape[1]:
            raise ValueError(f"max_active must be in [1, n_atoms={dictionary.shape[1]}], got {max_active}")
        self.max_active = None if max_active is None else int(max_active)
        self.n_iter, self.lam, self.untied = int(n_iter), float(lam), bool(untied)
        self.learn_dictionary = bool(learn_dictionary)
        if dead_atom_threshold < 0 or not 0 < usage_decay < 1:
            raise ValueError(f"need dead_atom_threshold >= 0 and 0 < usage_decay < 1, got {dead_atom_threshold}, "
                             f"{usage_decay}")
        if dead_atom_threshold > 0 and not self.learn_dictionary:
            raise ValueError("dead_atom_threshold > 0 restarts atoms, which needs learn_dictionary=True")
        self.dead_atom_threshold, self.usage_decay = float(dead_atom_threshold), float(usage_decay)
        if usage_floor < 0 or balance_step < 0:
            raise ValueError(f"need usage_floor >= 0 and balance_step >= 0, got {usage_floor}, {balance_step}")
        if balance_step > 0 and max_active is None:
            raise ValueError("balance_step > 0 balances the max_active selection, which needs max_active")
        self.usage_floor, self.balance_step = float(usage_floor), float(balance_step)
        if grad_iterations is not None and not 1 <= grad_iterations <= n_iter:
            raise ValueError(f"grad_iterations must be in [1, n_iter={n_iter}] or None, got {grad_iterations}")
        if grad_iterations is not None and untied:
            raise ValueError("grad_iterations applies to tied LISTA; untied=True backpropagates through all")
        self.grad_iterations = None if grad_iterations is None else int(grad_iterations)
        if recompute_backward and (grad_iterations is not None or untied):
            raise ValueError("recompute_backward is the exact backward of tied LISTA: it needs untied=False and "
                             "grad_iterations=None")
        self.recompute_backward = bool(recompute_backward)
        if self.learn_dictionary:
            self.dictionary_raw = nn.Parameter(dictionary)
        else:
            self.register_buffer("dictionary_raw", dictionary)
        d, k = dictionary.shape
        # EMA of each atom's activations per batch; starts at the threshold's scale so no atom is dead at once
        self.register_buffer("usage_ema", torch.full((k,), max(1.0, 2 * self.dead_atom_threshold)))
        self.register_buffer("selection_bias", torch.zeros(k))
        self._fixed_lipschitz: float | None = None
        n_sets = self.n_iter if per_iteration else 1
        n_thr = k if threshold_per_atom else 1
        # untied LISTA steps by its fixed c0: a learnable step would get no gradient (an error under DDP)
        # ... and so would the step and thresholds of a refit, which only choose the support
        self.step_raw = nn.Parameter(torch.full((n_sets,), _INIT_RAW),
                                     requires_grad=learn_step and not untied and not refit)
        self.threshold_raw = nn.Parameter(torch.full((n_sets, n_thr), _INIT_RAW),
                                          requires_grad=learn_threshold and not refit)
        if self.untied:
            c0 = float(spectral_norm_sq(dictionary))
            self.W = nn.Parameter((dictionary.T / c0).repeat(self.n_iter, 1, 1))
            self.S = nn.Parameter((torch.eye(k) - dictionary.T @ dictionary / c0).repeat(self.n_iter, 1, 1))
            self.register_buffer("c0", torch.tensor(c0))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written before the usage statistics existed load with fresh ones
        for name in ("usage_ema", "selection_bias"):
            state_dict.setdefault(prefix + name, getattr(self, name).clone())
        self._fixed_lipschitz = None  # the loaded dictionary may differ
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def dim(self) -> int:
        return self.dictionary_raw.shape[0]

    @property
    def n_atoms(self) -> int:
        return self.dictionary_raw.shape[1]

    @property
    def dictionary(self) -> torch.Tensor:
        """(d, K) atoms as used for analysis and synthesis (unit-norm columns when learned)."""
        if self.learn_dictionary:
            return F.normalize(self.dictionary_raw, dim=0)
        return self.dictionary_raw

    def thresholds(self) -> torch.Tensor:
        """(n_sets, 1 or K) lasso weights lam_t >= lam (before division by the step constant c)."""
        return self.lam + F.softplus(self.threshold_raw)

    def step_constants(self, dictionary: torch.Tensor) -> torch.Tensor:
        """(n_sets,) c_t >= ||D||_2^2; the ISTA step is 1 / c_t."""
        if not self.learn_dictionary:  # a fixed dictionary needs one SVD, not one per forward pass
            if self._fixed_lipschitz is None:
                self._fixed_lipschitz = float(spectral_norm_sq(dictionary.detach()))
            lipschitz = torch.tensor(self._fixed_lipschitz, dtype=dictionary.dtype, device=dictionary.device)
        elif torch.onnx.is_in_onnx_export():  # ONNX has no spectral norm: today's value as a constant
            lipschitz = torch.tensor(float(spectral_norm_sq(dictionary.detach())), dtype=dictionary.dtype)
        else:
            lipschitz = spectral_norm_sq(dictionary).detach()
        return lipschitz * (1.0 + F.softplus(self.step_raw))

    def iterate(self, z: torch.Tensor) -> LISTAOutput:
        """Run the T iterations on z (N, d); returns codes, last preactivation and last threshold."""
        with torch.autocast(device_type=z.device.type, enabled=False):
            z = z.float()
            dictionary = self.dictionary.float()
            lams = self.thresholds().float()
            per_iter = torch.arange(self.n_iter, device=z.device)
            lams = lams[per_iter.clamp(max=lams.shape[0] - 1)]  # (T, 1 or K)
            if self.untied:
                a = z.new_zeros(z.shape[0], dictionary.shape[1])
                thr = lams / self.c0
                for t in range(self.n_iter):
                    pre = z @ self.W[t].T + a @ self.S[t].T
                    a = soft_threshold(pre, thr[t])
            else:
                cs = self.step_constants(dictionary).float()
                cs = cs[per_iter.clamp(max=cs.shape[0] - 1)]  # (T,)
                thr = lams / cs[:, None]
                drive, gram = z @ dictionary, dictionary.T @ dictionary
                # a refit only chooses the support here: no autograd unless a rate term wants the preactivation
                with torch.set_grad_enabled(torch.is_grad_enabled() and (not self.refit or self.support_grad)):
                    a, pre = unrolled_ista(drive, gram, 1.0 / cs, thr, self.grad_iterations,
                                           recompute=self.recompute_backward, atoms=dictionary)
            if self.max_active is not None and self.max_active < a.shape[1]:
                bias = self.selection_bias if self.balance_step > 0 else None
                keep = largest_indices(a, self.max_active, dim=1, bias=bias)
                if not self.refit:  # the refit writes only the kept entries anyway
                    a = keep_only(a, keep, dim=1)
            else:
                keep = torch.arange(a.shape[1], device=a.device).expand(a.shape[0], -1)
            if self.refit:
                a = refit_on_support(a, drive, gram, keep, self.refit_ridge)
        return LISTAOutput(codes=a, preactivation=pre, threshold=thr[-1].expand(a.shape[1]))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (N, d) -> sparse codes (N, K)."""
        return self.iterate(z).codes

    def synthesize(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (N, K) -> D a, (N, d)."""
        return codes @ self.dictionary.T.to(codes.dtype)

    @torch.no_grad()
    def update_usage(self, codes: torch.Tensor) -> int:
        """With a training batch's codes (N, K): update the usage average and the selection bias (no
        autograd is involved, so this may run inside the forward pass); returns how many atoms were
        selected below the floor."""
        counts = all_reduce_sum((codes != 0).sum(0).float())  # over the global batch under DDP
        rows = all_reduce_sum(torch.tensor(float(codes.shape[0]), device=codes.device))
        self.usage_ema.mul_(self.usage_decay).add_(counts, alpha=1 - self.usage_decay)
        if self.balance_step <= 0:
            return 0
        low = counts / rows < self.usage_floor * self.max_active / self.n_atoms
        self.selection_bias.add_(torch.where(low, self.balance_step, -self.balance_step)).clamp_(min=0)
        return int(low.sum())

    @torch.no_grad()
    def restart_dead_atoms(self, z: torch.Tensor, codes: torch.Tensor) -> int:
        """Restart the atoms whose usage average is below ``dead_atom_threshold`` on the residuals of the
        worst-represented rows of z (N, d) with codes (N, K); returns how many."""
        if self.dead_atom_threshold <= 0:
            return 0
        dead = (self.usage_ema < self.dead_atom_threshold).nonzero().flatten()
        if dead.numel() == 0:
            return 0
        residual = all_gather_rows(z.float() - self.synthesize(codes.float()))  # the global batch's residuals
        worst = residual.norm(dim=1).topk(min(dead.numel(), residual.shape[0])).indices
        dead = dead[: worst.numel()]
        new_atoms = F.normalize(residual[worst], dim=1).T  # (d, n_dead)
        broadcast_from_main(new_atoms)  # every rank restarts to the same atoms
        self.dictionary_raw[:, dead] = new_atoms.to(self.dictionary_raw.dtype)
        self.usage_ema[dead] = 2 * self.dead_atom_threshold
        return int(dead.numel())

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, n_atoms={self.n_atoms}, n_iter={self.n_iter}, lam={self.lam}, "
                f"learn_dictionary={self.learn_dictionary}, untied={self.untied}, max_active={self.max_active}")


def largest_indices(a: torch.Tensor, k: int, dim: int = -1, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Indices of the ``k`` largest-magnitude entries of ``a`` along ``dim``, in no particular order;
    ``bias`` (one value per entry along ``dim``), when given, is added to the magnitudes of the non-zero
    entries for the choice only."""
    score = a.detach().abs()
    if bias is not None:
        shape = [1] * a.dim()
        shape[dim] = -1
        score = score.add_(bias.view(shape) * (a != 0))
    return score.topk(k, dim=dim, sorted=False).indices


def keep_largest(a: torch.Tensor, k: int, dim: int = -1, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Zero all but the ``k`` largest-magnitude entries of ``a`` along ``dim`` (gradients flow through
    the kept ones): the projection onto codes with at most ``k`` non-zeros (``bias``: see
    :func:`largest_indices`)."""
    return keep_only(a, largest_indices(a, k, dim, bias), dim)


def keep_only(a: torch.Tensor, indices: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``a`` with every entry zeroed except those at ``indices`` along ``dim`` (gradients flow through them)."""
    return a * torch.zeros_like(a).scatter_(dim, indices, 1.0)


def to_rows(x: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B * h * w, C): one row per spatial position."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def from_rows(rows: torch.Tensor, batch: int, h: int, w: int) -> torch.Tensor:
    """(B * h * w, C) -> (B, C, h, w), the inverse of :func:`to_rows`."""
    return rows.reshape(batch, h, w, -1).permute(0, 3, 1, 2).contiguous()
