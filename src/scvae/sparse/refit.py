"""The least-squares refit on a chosen support (the last step of OMP), as one batched k x k solve.

After LISTA picks at most k atoms per row, the kept values are replaced by the ridge fit
argmin_c ||z - D_S c||^2 + ridge ||c||^2, i.e. c = (D_S^T D_S + ridge I)^{-1} D_S^T z.

Why the ridge is REFIT_RIDGE and not a token 1e-4: the atoms are unit-norm, so the sub-Gram's eigenvalues
lie in [0, k] with mean 1 and the ridge is relative to that scale. Coherent atoms (any 33 of 256 atoms in
64 dimensions are) give near-zero eigenvalues; with ridge 1e-4 an untrained model's codes reached |a| = 61
for a latent of norm 8 and float32 rounding in single coefficients differed between PyTorch and ONNX by
5e-2. The ridge bounds both: |c| <= ||z|| / (2 sqrt(ridge)) (5 ||z|| at 0.01) and a condition number
<= (k + ridge) / ridge; at 0.01 the largest held-out |a| is about 6 and the preset loses 0.04 dB, where 0.04
lost 0.59 dB (docs/design.md, eighth round).

Precision: the systems are solved in float32 by Cholesky, which the ridge keeps positive definite with a
wide margin over float32 rounding (about k * eps * k ~ 7e-5 for k = 33).

Speed: on CPU, PyTorch's batched Cholesky and triangular solves loop over the batch on one core, so the
systems are split into one block of rows per thread (:func:`_map_row_blocks`); each matrix is still solved
by the same LAPACK routine, so the results are bit for bit those of one call.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F

REFIT_RIDGE = 0.01  # the default ridge of every refit (LISTA, the bottleneck, SC-VAE); see above


def refit_on_support(a: torch.Tensor, drive: torch.Tensor, gram: torch.Tensor, keep: torch.Tensor,
                     ridge: float = REFIT_RIDGE) -> torch.Tensor:
    """Codes a (N, K), zero outside the columns ``keep`` (N, k) of each row -> the same support with the
    least-squares values, from drive = z D (N, K) and gram = D^T D (K, K), solved in drive's dtype
    (float32 in LISTA, see above). Differentiable in drive and gram; the support is a discrete choice.
    Kept entries that are zero (a row with fewer than k non-zeros) stay zero: in the sub-Gram each such slot
    points at its own padding "atom", orthogonal to everything, so its row of the system decouples and its
    value solves to exactly 0 (from a right-hand side of 0), with no (N, k, k) masks."""
    n, n_atoms = a.shape
    k = keep.shape[1]
    on = a.gather(1, keep) != 0  # (N, k)
    slots = torch.where(on, keep, n_atoms + torch.arange(k, device=a.device))  # (N, k)
    eye = torch.eye(n_atoms + k, dtype=drive.dtype, device=a.device)
    padding = eye * (torch.arange(n_atoms + k, device=a.device) >= n_atoms)  # identity on the padding atoms
    padded = F.pad(gram.to(drive.dtype), (0, k, 0, k)) + ridge * eye + padding  # (K+k, K+k); not block_diag: ONNX
    rhs = drive.gather(1, keep) * on  # (N, k): a padding slot's right-hand side is 0
    if torch.onnx.is_in_onnx_export():  # ONNX has no Cholesky
        values = spd_solve_plain(torch.take(padded, _pair_indices(slots, n_atoms + k)), rhs)
    else:
        values = _SubGramSolve.apply(padded, slots, rhs)
    # a padding slot's value is 0 already; the mask keeps its gradient 0 too, as it lands on no code
    return a.new_zeros(n, n_atoms).scatter(1, keep, (values * on).to(a.dtype))


def _pair_indices(slots: torch.Tensor, width: int) -> torch.Tensor:
    """Flat indices (N, k, k) of the sub-matrices [slots_i, slots_j] of a (width, width) matrix."""
    return slots[:, :, None] * width + slots[:, None, :]


class _SubGramSolve(torch.autograd.Function):
    """x = A^{-1} b with A = padded[slots][:, slots] (N, k, k) SPD, b (N, k). The sub-matrices are gathered
    inside the row blocks (:func:`_map_row_blocks`), so they never exist whole, and the factors stay in
    their blocks. The backward reuses them: g_b = A^{-1} g_x and g_A = -g_b x^T, one triangular solve pair
    instead of autograd's differentiation of the factor, and g_A is summed back into ``padded`` only when
    it needs a gradient."""

    @staticmethod
    def forward(ctx, padded: torch.Tensor, slots: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
        width = padded.shape[0]
        sizes = _row_blocks(slots)
        solved = _map_row_blocks(lambda s, b: _factor_and_solve(torch.take(padded, _pair_indices(s, width)), b),
                                 slots.split(sizes), rhs[..., None].split(sizes))
        x = torch.cat([block_x for _, block_x in solved])
        ctx.save_for_backward(padded, slots, x, *(factor for factor, _ in solved))
        return x.squeeze(-1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        padded, slots, x, *factors = ctx.saved_tensors
        grads = grad[..., None].split([factor.shape[0] for factor in factors])  # the forward's blocks
        grad_rhs = torch.cat(_map_row_blocks(_solve_with_factor, factors, grads))
        grad_padded = None
        if ctx.needs_input_grad[0]:
            grad_sub = -grad_rhs @ x.transpose(1, 2)  # (N, k, k)
            flat = torch.zeros(padded.numel(), dtype=grad_sub.dtype, device=grad_sub.device)
            grad_padded = flat.index_add_(0, _pair_indices(slots, padded.shape[0]).flatten(), grad_sub.flatten())
            grad_padded = grad_padded.view_as(padded)
        return grad_padded, None, grad_rhs.squeeze(-1)


def _factor_and_solve(matrix: torch.Tensor, rhs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(L, x) for SPD matrix (N, k, k) = L L^T and x = matrix^{-1} rhs (N, k, 1)."""
    factor = torch.linalg.cholesky(matrix)
    return factor, _solve_with_factor(factor, rhs)


_MIN_ROWS_PER_THREAD = 256  # below this a thread's hand-off costs more than it saves
_POOL: tuple[ThreadPoolExecutor, int, int] | None = None  # (pool, its workers, the process that started it)


def _row_blocks(rows: torch.Tensor) -> list[int]:
    """Block sizes splitting the rows of ``rows`` (N, ...) over torch's intra-op threads; one block where a
    split cannot help (GPU, one thread, few rows, tracing)."""
    n, threads = rows.shape[0], torch.get_num_threads()
    blocks = min(threads, n // _MIN_ROWS_PER_THREAD)
    if blocks < 2 or rows.device.type != "cpu" or torch.compiler.is_compiling() or torch.jit.is_tracing():
        return [n]
    return [n // blocks + (i < n % blocks) for i in range(blocks)]


def _map_row_blocks(fn, *blocks) -> list:
    """[fn(*row_block) for each row block], each argument given as its list of blocks (the same rows in
    each); the blocks run on threads at once. For fns that treat rows independently, such as PyTorch's
    batched LAPACK calls, which loop over the batch on one core."""
    global _POOL
    parts = list(zip(*blocks))
    if len(parts) == 1:
        return [fn(*parts[0])]
    if _POOL is None or _POOL[1] < len(parts) - 1 or _POOL[2] != os.getpid():  # a forked child has no threads
        workers = len(parts) - 1
        _POOL = (ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scvae-refit"), workers, os.getpid())
    grad_enabled = torch.is_grad_enabled()  # thread-local: a worker would otherwise record a graph

    def in_worker(*part):
        with torch.set_grad_enabled(grad_enabled):
            return fn(*part)

    futures = [_POOL[0].submit(in_worker, *part) for part in parts[1:]]
    return [fn(*parts[0])] + [future.result() for future in futures]


def _solve_with_factor(factor: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """(L L^T)^{-1} rhs for lower-triangular L (N, k, k), rhs (N, k, 1): the two triangular solves that
    ``torch.cholesky_solve`` makes, called directly because on CPU that batched call took 2.2x as long
    for 2,048 systems of 33 x 33 (3.2 against 1.4 ms, 2 threads)."""
    y = torch.linalg.solve_triangular(factor, rhs, upper=False)
    return torch.linalg.solve_triangular(factor.transpose(-1, -2), y, upper=True)


def spd_solve_plain(matrix: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Solve matrix (N, k, k) @ x = rhs (N, k) for symmetric positive definite matrices with products, sums
    and square roots only (Cholesky column by column, then the two triangular solves): the form that
    exports to ONNX. k steps each, so meant for small k."""
    k = rhs.shape[1]
    columns: list[torch.Tensor] = []  # column j of the Cholesky factor L, zero above row j, each (N, k)
    below = torch.tril(torch.ones(k, k, dtype=rhs.dtype, device=rhs.device))  # below[:, j]: rows >= j
    for j in range(k):
        v = matrix[:, :, j]
        if columns:
            done = torch.stack(columns, dim=2)  # (N, k, j)
            v = v - (done * done[:, j:j + 1, :]).sum(-1)
        columns.append(v * below[:, j] / torch.sqrt(v[:, j:j + 1]))
    factor = torch.stack(columns, dim=2)  # (N, k, k), lower triangular
    y: list[torch.Tensor] = []  # L y = rhs, top row first
    for j in range(k):
        partial = (factor[:, j, :j] * torch.stack(y, dim=1)).sum(-1) if y else 0
        y.append((rhs[:, j] - partial) / factor[:, j, j])
    x: list[torch.Tensor] = []  # L^T x = y, bottom row first
    for j in reversed(range(k)):
        partial = (factor[:, j + 1:, j] * torch.stack(x[::-1], dim=1)).sum(-1) if x else 0
        x.append((y[j] - partial) / factor[:, j, j])
    return torch.stack(x[::-1], dim=1)
