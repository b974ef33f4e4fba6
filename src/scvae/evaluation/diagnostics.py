"""Representation diagnostics accumulated over a whole dataset, one accumulator per model type.

- SC-VAE: atom-use histogram, fraction of atoms never active, mean / median active atoms per code,
  Hoyer sparsity per code (sqrt(K) - |a|_1 / |a|_2) / (sqrt(K) - 1), averaged over non-zero codes, and the
  perplexity of atom use (as for a codebook: how many atoms are in effect used). "Atoms used" alone counts
  an atom active at one position in a million; the perplexity does not, so a dictionary whose codes all sit
  on 6 atoms shows perplexity ~6 even when every atom fires somewhere.
- VQ-VAE: codebook usage (fraction of codes used at least once) and perplexity exp(H(usage)).
- VAE: active units (Burda et al. 2016: Var_x E_q[z_u] > 0.01, u = channel x position) and KL per channel.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import torch

from ..bottlenecks import (FSQBottleneck, GaussianBottleneck, ResidualVQBottleneck, StrongVQBottleneck,
                           VQBottleneck)
from ..sparse import SparseCodingBottleneck

DIAGNOSTICS: dict[type, type["Diagnostics"]] = {}  # bottleneck class -> the diagnostics of its codes


def _register(*bottlenecks: type):
    def wrap(cls):
        for bottleneck in bottlenecks:
            DIAGNOSTICS[bottleneck] = cls
        return cls
    return wrap


def diagnostics_for(model) -> type["Diagnostics"] | None:
    """The diagnostics of ``model``'s bottleneck (atom usage, codebook usage, KL per channel), or None."""
    return next((d for b, d in DIAGNOSTICS.items() if isinstance(model.bottleneck, b)), None)


class Diagnostics(ABC):
    """Streaming accumulator: ``update(model_output)`` per batch, then ``result()``."""

    @abstractmethod
    def update(self, output: Any) -> None:
        """Accumulate one batch's model output."""

    @abstractmethod
    def result(self) -> dict[str, Any]:
        """The diagnostics over everything seen so far."""

    @classmethod
    def for_model(cls, model: Any) -> "Diagnostics":
        """An accumulator set up for ``model`` (e.g. its codebook size)."""
        return cls()

    @property
    def usage_counts(self) -> list[int] | None:
        """Per-atom / per-code usage counts for the histogram, when the model has discrete units."""
        return None


def usage_perplexity(counts: torch.Tensor) -> float:
    """exp of the entropy of the usage distribution ``counts / counts.sum()`` (K,): K when all units are
    used equally, 1 when one unit takes everything."""
    p = counts.double() / counts.sum().clamp_min(1)
    p = p[p > 0]
    return float((-(p * p.log()).sum()).exp())


def hoyer(codes: torch.Tensor) -> torch.Tensor:
    """Hoyer sparsity of each row of (N, K); rows that are all zero are dropped."""
    k = codes.shape[1]
    l1, l2 = codes.abs().sum(1), codes.norm(dim=1)
    keep = l2 > 0
    return (math.sqrt(k) - l1[keep] / l2[keep]) / (math.sqrt(k) - 1)


@_register(SparseCodingBottleneck)
class SparseCodeDiagnostics(Diagnostics):
    def __init__(self):
        self.atom_counts: torch.Tensor | None = None
        self.active: list[torch.Tensor] = []
        self.hoyer: list[torch.Tensor] = []
        self.max_abs = 0.0  # the largest |a|: what the refit's ridge bounds

    def update(self, output: Any) -> None:
        codes = output.codes.detach().float()
        self.max_abs = max(self.max_abs, float(codes.abs().max())) if codes.numel() else self.max_abs
        rows = codes.permute(0, 2, 3, 1).reshape(-1, codes.shape[1]).cpu()
        nonzero = rows != 0
        counts = nonzero.sum(0)
        self.atom_counts = counts if self.atom_counts is None else self.atom_counts + counts
        self.active.append(nonzero.sum(1))
        self.hoyer.append(hoyer(rows))

    def result(self) -> dict[str, Any]:
        counts, active = self.atom_counts, torch.cat(self.active).double()
        k = counts.numel()
        hoy = torch.cat(self.hoyer)
        return {"n_atoms": k, "n_codes": int(active.numel()), "active_mean": float(active.mean()),
                "active_median": float(active.median()), "active_max": int(active.max()), "active_frac": float(active.mean()) / k,
                "atoms_used": int((counts > 0).sum()), "atoms_used_frac": float((counts > 0).double().mean()),
                "atoms_never_active_frac": float((counts == 0).double().mean()),
                "perplexity": usage_perplexity(counts), "max_abs_code": self.max_abs,
                "hoyer_mean": float(hoy.mean()) if hoy.numel() else float("nan")}

    @property
    def usage_counts(self) -> list[int] | None:
        return self.atom_counts.tolist() if self.atom_counts is not None else None


@_register(VQBottleneck, StrongVQBottleneck, FSQBottleneck, ResidualVQBottleneck)
class CodebookDiagnostics(Diagnostics):
    """Code usage. A residual VQ's indices (B, Q, h, w) count per stage: its Q codebooks are Q * K codes."""

    def __init__(self, codebook_size: int | None = None):
        self.codebook_size = codebook_size
        self.counts: torch.Tensor | None = None

    @classmethod
    def for_model(cls, model: Any) -> "CodebookDiagnostics":
        return cls(model.codebook_size * getattr(model, "num_codebooks", 1))

    def update(self, output: Any) -> None:
        idx = output.indices.detach().cpu()
        if idx.dim() == 4:  # stage q's code i is code q * K + i of the stacked codebooks
            stages = idx.shape[1]
            idx = idx + torch.arange(stages).view(1, -1, 1, 1) * (self.codebook_size // stages)
        idx = idx.flatten()
        size = self.codebook_size or int(idx.max()) + 1
        counts = torch.bincount(idx, minlength=size)
        if self.counts is not None and counts.numel() != self.counts.numel():
            size = max(counts.numel(), self.counts.numel())
            counts = torch.nn.functional.pad(counts, (0, size - counts.numel()))
            self.counts = torch.nn.functional.pad(self.counts, (0, size - self.counts.numel()))
        self.counts = counts if self.counts is None else self.counts + counts

    def result(self) -> dict[str, Any]:
        return {"codebook_size": self.counts.numel(), "codes_used": int((self.counts > 0).sum()),
                "codebook_usage": float((self.counts > 0).double().mean()),
                "perplexity": usage_perplexity(self.counts)}

    @property
    def usage_counts(self) -> list[int] | None:
        return self.counts.tolist() if self.counts is not None else None


@_register(GaussianBottleneck)
class PosteriorDiagnostics(Diagnostics):
    def __init__(self, threshold: float = 0.01):
        self.threshold = threshold
        self.n = 0
        self.sum = self.sumsq = self.kl = None

    def update(self, output: Any) -> None:
        from ..bottlenecks import kl_per_dim

        mean = output.mean.detach().double().cpu()
        kl = kl_per_dim(output.mean.detach(), output.logvar.detach()).double().cpu()
        flat = mean.flatten(1)
        if self.sum is None:
            self.sum, self.sumsq, self.kl = flat.sum(0), flat.square().sum(0), kl.sum((0, 2, 3))
            self.positions = mean.shape[2] * mean.shape[3]
        else:
            self.sum += flat.sum(0)
            self.sumsq += flat.square().sum(0)
            self.kl += kl.sum((0, 2, 3))
        self.n += mean.shape[0]

    def result(self) -> dict[str, Any]:
        var = self.sumsq / self.n - (self.sum / self.n).square()
        active = var > self.threshold
        kl_channel = self.kl / (self.n * self.positions)
        return {"units": int(active.numel()), "active_units": int(active.sum()),
                "active_units_frac": float(active.double().mean()),
                "kl_per_channel": [round(float(v), 6) for v in kl_channel],
                "kl_total_per_position": float(kl_channel.sum()),
                "channels_collapsed": int((kl_channel < 0.01).sum())}
