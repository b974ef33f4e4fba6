"""SC-VAE's bottleneck as a drop-in module: latent -> sparse codes over a dictionary -> D a.

Like vector-quantize-pytorch's ``quantized, indices, loss = vq(x)``::

    sc = SparseCodingBottleneck(dim=64, n_atoms=121, max_active=15, balance_step=1e-3)
    out = sc(z)                       # z (B, 64, h, w) or (B, N, 64)
    x_hat = decoder(out.latent_hat)   # D a, same shape as z
    loss = reconstruction + out.loss  # the bottleneck's weighted latent / sparsity / usage terms

In training mode the forward pass also updates the atom-usage statistics and the selection bias (like a
BatchNorm's running averages or a VQ's EMA). With a learned dictionary and ``dead_atom_threshold``, call
:meth:`restart_dead_atoms` after the optimizer step.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .dictionary import dct_dictionary
from .lista import LAM, LISTA, N_ITER, from_rows, keep_largest, to_rows
from .quantize import quantization_indices, quantize_codes
from .rate import SparseCodeRate
from .refit import REFIT_RIDGE


@dataclass
class BottleneckOutput:
    """latent_hat: D a, the input's shape; codes: (B, K, h, w) for (B, d, h, w) inputs, (B, N, K) for
    (B, N, d); latent: the (normalised) input the codes approximate; loss: the weighted sum of ``losses``
    (its terms detached, for logging); preactivation / threshold: the last LISTA iterate before
    thresholding and its threshold, rows (B*h*w, K) and (K,); bits: with a rate model, the bits of each
    latent vector's code, (B*h*w,) or (B*N,)."""

    latent_hat: torch.Tensor
    codes: torch.Tensor
    latent: torch.Tensor
    loss: torch.Tensor
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    preactivation: torch.Tensor | None = None
    threshold: torch.Tensor | None = None
    bits: torch.Tensor | None = None


def rms_normalize(z: torch.Tensor, dim: int = 1, eps: float = 1e-6) -> torch.Tensor:
    """Scale each latent vector (along ``dim``) to unit root-mean-square.

    This fixes the scale the lasso threshold is measured against, so the encoder cannot make the
    threshold irrelevant by growing its output (the official code's drift to dense codes).
    """
    return z * torch.rsqrt(z.float().square().mean(dim=dim, keepdim=True) + eps).to(z.dtype)


def soft_usage_kl(preactivation: torch.Tensor, threshold: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(usage || uniform) of a soft, differentiable atom-usage distribution over a batch.

    preactivation (N, K) is the last LISTA iterate before thresholding; an atom counts as soft-active at
    a position with probability sigmoid((|u| - threshold) / (temperature * threshold)). Unlike the codes,
    this has a gradient for atoms that are never active, which is what lets dead atoms come back.
    """
    scale = temperature * threshold.detach()
    usage = torch.sigmoid((preactivation.abs() - threshold.detach()) / scale).mean(0)
    p = usage / usage.sum().clamp_min(1e-12)
    return (p * (p.clamp_min(1e-12) * p.numel()).log()).sum()


class SparseCodingBottleneck(nn.Module):
    """Sparse coding of every latent vector over a (DCT-initialised) dictionary with LISTA.

    Args:
        dim: d, the latent vectors' size (a perfect square for the 2-D DCT dictionary).
        n_atoms: K (default d: the complete orthonormal DCT); K > d gives the overcomplete DCT.
        latent_norm: 'rms' (scale each latent vector to unit RMS first) or 'none'.
        quantize_step: if > 0, every non-zero code is rounded to a multiple of this step (never to zero),
            in training (straight-through gradient) and at inference: the decoder learns to read coarse
            values, which sets the rate of the values (``scvae.evaluation.estimate_rate``). 0 keeps
            real-valued codes.
        latent_weight: the weight of the latent loss ``mean((z - D a)^2)``.
        sparsity_weight: the weight of the L1 term on the codes.
        usage_weight: the weight of the soft usage-balance loss (:func:`soft_usage_kl`).
        usage_temperature: that loss's temperature, relative to the threshold.
        rate_weight: if > 0, the codes are trained for rate: the loss gains ``rate_weight`` x the mean bits
            per latent vector under :class:`~scvae.sparse.rate.SparseCodeRate` (support plus values), the
            quantisation step is learned (starting at ``quantize_step``, which must then be > 0), a value
            that rounds to 0 leaves the support, and the support gets a gradient through LISTA's last
            preactivation. 0: no rate term.

    The other keywords are :class:`~scvae.sparse.LISTA`'s (n_iter, lam, max_active, balancing,
    grad_iterations, recompute_backward, ...), with its defaults: no cap, so no refit and no balancing, unlike
    :class:`~scvae.models.SCVAE`, which caps at 33 atoms, refits and balances.
    """

    def __init__(self, dim: int, n_atoms: int | None = None, *, n_iter: int = N_ITER, lam: float = LAM,
                 max_active: int | None = None, latent_norm: str = "rms", latent_weight: float = 0.01,
                 sparsity_weight: float = 0.0, usage_weight: float = 0.0, usage_temperature: float = 0.5,
                 learn_dictionary: bool = False, learn_step: bool = True, learn_threshold: bool = True,
                 threshold_per_atom: bool = False, per_iteration: bool = False, untied: bool = False,
                 dead_atom_threshold: float = 0.0, usage_floor: float = 0.05, balance_step: float = 0.0,
                 grad_iterations: int | None = None, refit: bool = False, refit_ridge: float = REFIT_RIDGE,
                 quantize_step: float = 0.0, rate_weight: float = 0.0, recompute_backward: bool = False):
        super().__init__()
        if latent_norm not in ("rms", "none"):
            raise ValueError(f"latent_norm must be 'rms' or 'none', got {latent_norm!r}")
        if not quantize_step >= 0:
            raise ValueError(f"quantize_step must be >= 0 (0 = real-valued codes), got {quantize_step}")
        if not rate_weight >= 0 or (rate_weight > 0 and quantize_step <= 0):
            raise ValueError(f"rate_weight must be >= 0, and > 0 only with a quantize_step > 0 to start the learned "
                             f"step from; got rate_weight={rate_weight}, quantize_step={quantize_step}")
        self.latent_norm, self.rate_weight, self._fixed_step = latent_norm, float(rate_weight), float(quantize_step)
        self.latent_weight, self.sparsity_weight = float(latent_weight), float(sparsity_weight)
        self.usage_weight, self.usage_temperature = float(usage_weight), float(usage_temperature)
        self.lista = LISTA(dct_dictionary(dim, n_atoms), n_iter, lam, learn_dictionary=learn_dictionary,
                           learn_step=learn_step, learn_threshold=learn_threshold,
                           threshold_per_atom=threshold_per_atom, per_iteration=per_iteration, untied=untied,
                           max_active=max_active, dead_atom_threshold=dead_atom_threshold,
                           usage_floor=usage_floor, balance_step=balance_step, grad_iterations=grad_iterations,
                           refit=refit, refit_ridge=refit_ridge, support_grad=rate_weight > 0,
                           recompute_backward=recompute_backward)
        if rate_weight > 0:
            self.log_step = nn.Parameter(torch.tensor(float(quantize_step)).log())
            self.rate = SparseCodeRate(self.lista.n_atoms)

    @property
    def n_atoms(self) -> int:
        return self.lista.n_atoms

    @property
    def quantize_step(self) -> float:
        """The values' quantisation step (the learned one when trained for rate); 0 for real-valued codes."""
        return float(self.log_step.detach().exp()) if self.rate_weight > 0 else self._fixed_step

    def _step(self) -> torch.Tensor | float:
        return self.log_step.exp() if self.rate_weight > 0 else self._fixed_step

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """The latent the codes approximate: ``z`` RMS-normalised along its channel axis (or unchanged)."""
        return rms_normalize(z, dim=1 if z.dim() == 4 else -1) if self.latent_norm == "rms" else z

    latent = normalize  # what forward reports as its latent, the bottlenecks' common name for it

    def _rows(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() == 4:
            return to_rows(z)
        if z.dim() == 3:
            return z.reshape(-1, z.shape[-1])
        raise ValueError(f"expected (B, d, h, w) or (B, N, d) latents, got shape {tuple(z.shape)}")

    def _unrows(self, rows: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        if like.dim() == 4:
            return from_rows(rows, like.shape[0], like.shape[2], like.shape[3])
        return rows.reshape(like.shape[0], like.shape[1], -1)

    def quantize(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes rounded to the ``quantize_step`` grid (straight-through); unchanged if 0."""
        if self.rate_weight == 0 and self._fixed_step <= 0:
            return codes
        # trained for rate, a value below half a step leaves the support (it would cost more than it gives);
        # otherwise the support is LISTA's and a kept value never rounds to 0
        return quantize_codes(codes, self._step(), keep_support=self.rate_weight == 0)

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (B, d, h, w) or (B, N, d) -> sparse codes (B, K, h, w) or (B, N, K)."""
        z = self.normalize(z)
        return self._unrows(self.quantize(self.lista(self._rows(z))), z)

    def synthesize(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, K, h, w) or (B, N, K) -> D a of the same layout with d channels."""
        return self._unrows(self.lista.synthesize(self._rows(codes)), codes)

    # --- the interface every bottleneck shares (scvae.bottlenecks.base) ---------------------------------
    coded_channel = "atom"

    def code_vectors(self, codes: torch.Tensor) -> torch.Tensor:
        """The sparse codes are the code space: (B, K, h, w) unchanged (as float32)."""
        return codes.float()

    def nearest_codes(self, vectors: torch.Tensor) -> torch.Tensor:
        """(B, K, h, w) -> the same with only the ``max_active`` largest-magnitude entries kept per position
        (LISTA's own selection, with its balancing bias) and, with a quantisation step, the kept values on
        its grid: codes of the kind the decoder was trained on."""
        k, vectors = self.lista.max_active, vectors.float()
        if k is not None and k < vectors.shape[1]:
            bias = self.lista.selection_bias if self.lista.balance_step > 0 else None
            vectors = keep_largest(vectors, k, dim=1, bias=bias)
        return self.quantize(vectors)

    def symbol_step(self) -> float | None:
        """A quantisation-aware bottleneck's own step; None for real-valued codes."""
        return self.quantize_step or None

    def to_symbols(self, codes: torch.Tensor, step: float | None = None) -> torch.Tensor:
        """Codes (B, K, h, w) -> (B, K, h, w) int64: per atom, 0 where it is inactive, else the nearest non-zero
        multiple n of ``step`` (a kept atom never rounds to 0: the support is coded exactly)."""
        return quantization_indices(codes.float(), step, keep_support=True).long()

    def from_symbols(self, symbols: torch.Tensor, step: float | None = None) -> torch.Tensor:
        """The inverse of :meth:`to_symbols`."""
        return symbols.float() * step

    def forward(self, z: torch.Tensor) -> BottleneckOutput:
        z = self.normalize(z)
        rows = self._rows(z)
        out = self.lista.iterate(rows)
        bits = None
        if self.rate_weight > 0:
            bits = self.rate(out.codes, self._step(), out.preactivation, out.threshold)
        out.codes = self.quantize(out.codes)
        rows_hat = self.lista.synthesize(out.codes)
        losses = {"latent": F.mse_loss(rows_hat, rows.float())}
        loss = self.latent_weight * losses["latent"]
        if bits is not None:
            losses["bits"] = bits.mean()
            loss = loss + self.rate_weight * losses["bits"]
        if self.sparsity_weight > 0:
            losses["l1"] = out.codes.abs().sum(-1).mean()
            loss = loss + self.sparsity_weight * losses["l1"]
        if self.usage_weight > 0:
            losses["usage_kl"] = soft_usage_kl(out.preactivation, out.threshold, self.usage_temperature)
            loss = loss + self.usage_weight * losses["usage_kl"]
        if self.training:
            self.lista.update_usage(out.codes.detach())
        return BottleneckOutput(latent_hat=self._unrows(rows_hat, z), codes=self._unrows(out.codes, z), latent=z,
                                loss=loss, losses={k: v.detach() for k, v in losses.items()},
                                preactivation=out.preactivation, threshold=out.threshold, bits=bits)

    @torch.no_grad()
    def restart_dead_atoms(self, latent: torch.Tensor, codes: torch.Tensor) -> int:
        """After the optimizer step, with a training step's ``out.latent`` and ``out.codes``: restart the dead
        atoms of a learned dictionary (see LISTA); returns how many."""
        if self.lista.dead_atom_threshold <= 0:  # the usual case: skip the (B*h*w, K) copies below
            return 0
        return self.lista.restart_dead_atoms(self._rows(latent.detach()), self._rows(codes.detach()))
