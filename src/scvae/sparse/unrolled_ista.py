"""The unrolled ISTA iterations of (tied) LISTA with a hand-written backward pass.

Autograd through T unrolled iterations keeps about four (N, K) tensors per iteration and, because the
iteration matrix S = I - D^T D / c is a differentiable function of the step, one extra (N, K) x (K, K)
product per iteration in the backward pass. The adjoint recursion below needs only each iterate's codes
(and, when the step is learned, its residual), and one product per iteration each way: about half the
memory and 1.3-1.5x faster on CPU (``bench/lista_speed.py``), with the same gradients
(``tests/test_unrolled_ista.py`` checks them against autograd and with ``gradcheck``).

Iteration t = 1..T, from a_0 = 0, with b = D^T z, G = D^T D, step 1/c_t and threshold theta_t (already
divided by c_t):

    r_t = b - a_{t-1} G,    u_t = a_{t-1} + r_t / c_t,    a_t = soft(u_t, theta_t)
"""
from __future__ import annotations

import torch

from .solvers import soft_threshold


def unrolled_ista(drive: torch.Tensor, gram: torch.Tensor, inv_steps: torch.Tensor, thresholds: torch.Tensor,
                  grad_iterations: int | None = None, recompute: bool = False,
                  atoms: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Run T = len(inv_steps) ISTA iterations; returns the codes a_T and the preactivation u_T, both (N, K).

    Args:
        drive: b = D^T z, (N, K).
        gram: G = D^T D, (K, K).
        inv_steps: 1 / c_t for every iteration, (T,).
        thresholds: theta_t for every iteration, (T, 1) shared or (T, K) per atom.
        grad_iterations: backpropagate through only the last m iterations (the earlier ones are treated as
            a constant warm start, as in Jacobian-free backprop for fixed-point layers): memory O(m) instead
            of O(T). None: all T, the exact gradient.
        recompute: the exact gradient in memory that does not grow with T. Only ``drive`` is kept for the
            backward, which recomputes the iterates ``ceil(N / T)`` rows at a time (rows are independent)
            and back-propagates each chunk: one more forward pass, and about two (N, K) tensors at the
            peak of the backward. Not combined with ``grad_iterations``.
        atoms: optionally D (d, K) itself, with gram = D^T D. Where 2 d < K (the presets' 64 x 256), every
            product with G is taken as (x D^T) D instead: half the multiplications, the same function (to
            float rounding); gradients still flow to ``gram``, not to ``atoms``.
    Differentiable in all four tensors (the hand-written backward is used whenever one needs a gradient).
    """
    n_iter, atoms = inv_steps.shape[0], _cheaper_atoms(atoms)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (drive, gram, inv_steps, thresholds)):
        if recompute and grad_iterations is not None:
            raise ValueError("recompute gives the exact gradient of all iterations; leave grad_iterations None")
        first = 0 if grad_iterations is None else n_iter - min(int(grad_iterations), n_iter)
        return _UnrolledISTA.apply(drive, gram, inv_steps, thresholds, first, bool(recompute), atoms)
    codes, pre, _, _ = _iterate(drive, gram, inv_steps, thresholds, first_kept=n_iter, atoms=atoms)
    return codes, pre


def _cheaper_atoms(atoms: torch.Tensor | None) -> torch.Tensor | None:
    """D (d, K), detached, when products with G = D^T D are cheaper through it (2 d < K), else None."""
    if atoms is None or 2 * atoms.shape[0] >= atoms.shape[1]:
        return None
    return atoms.detach()


def _minus_times_gram(base: torch.Tensor, x: torch.Tensor, gram: torch.Tensor, atoms: torch.Tensor | None) -> torch.Tensor:
    """base - x G (G symmetric), as base - (x D^T) D when the atoms D are given."""
    if atoms is None:
        return torch.addmm(base, x, gram, alpha=-1)
    return torch.addmm(base, x @ atoms.T, atoms, alpha=-1)


def unrolled_ista_autograd(drive: torch.Tensor, gram: torch.Tensor, inv_steps: torch.Tensor,
                           thresholds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The same iterations written plainly for autograd: the reference the hand-written backward is
    tested and benchmarked against."""
    a = torch.zeros_like(drive)
    for t in range(inv_steps.shape[0]):
        pre = a + (drive - a @ gram) * inv_steps[t]
        a = soft_threshold(pre, thresholds[t])
    return a, pre


def _iterate(drive, gram, inv_steps, thresholds, first_kept: int, atoms=None):
    """The forward iterations t = 0..T-1. From iteration ``first_kept`` on, also returns the iterates'
    codes (the input of that iteration first, then every output) and their residuals r_t."""
    codes, residuals = [], []
    a = drive.new_zeros(drive.shape)
    limits = thresholds.expand(-1, drive.shape[1]).contiguous()  # (T, K): clamp is fastest with full rows
    for t in range(inv_steps.shape[0]):
        if t == first_kept:
            codes.append(a)
        r = drive if t == 0 else _minus_times_gram(drive, a, gram, atoms)
        pre = r * inv_steps[t] if t == 0 else torch.addcmul(a, r, inv_steps[t])
        a = pre - pre.clamp(-limits[t], limits[t])  # soft(pre, theta_t)
        if t >= first_kept:
            codes.append(a)
            residuals.append(r)
    return a, pre, codes, residuals


class _UnrolledISTA(torch.autograd.Function):
    @staticmethod
    def forward(ctx, drive, gram, inv_steps, thresholds, first_kept, recompute, atoms):
        ctx.first_kept, ctx.recompute, ctx.atoms = first_kept, recompute, atoms
        if recompute:  # keep only the inputs: the backward recomputes the iterates a chunk of rows at a time
            a, pre, _, _ = _iterate(drive, gram, inv_steps, thresholds, first_kept=inv_steps.shape[0], atoms=atoms)
            ctx.save_for_backward(gram, inv_steps, thresholds, drive)
            return a, pre
        a, pre, codes, residuals = _iterate(drive, gram, inv_steps, thresholds, first_kept, atoms)
        ctx.save_for_backward(gram, inv_steps, thresholds, *codes, *residuals)
        return a, pre

    @staticmethod
    def backward(ctx, grad_codes, grad_pre):
        gram, inv_steps, thresholds, *saved = ctx.saved_tensors
        needs = ctx.needs_input_grad[:4]
        if not ctx.recompute:
            n_kept = len(saved) // 2  # codes[j] is the input of kept iteration j, codes[j + 1] its output
            grads = _adjoint(saved[: n_kept + 1], saved[n_kept + 1:], grad_codes, grad_pre, gram, inv_steps,
                             thresholds, ctx.first_kept, needs, ctx.atoms)
        else:
            grads = _adjoint_in_chunks(saved[0], grad_codes, grad_pre, gram, inv_steps, thresholds, needs, ctx.atoms)
        return (*(g if need else None for g, need in zip(grads, needs)), None, None, None)


def _adjoint_in_chunks(drive, grad_codes, grad_pre, gram, inv_steps, thresholds, needs, atoms=None):
    """The exact backward from the inputs alone: rows are independent, so the iterates of ``ceil(N / T)``
    rows at a time are recomputed and back-propagated, holding about two (N, K) tensors however large T is."""
    n_iter, rows = inv_steps.shape[0], drive.shape[0]
    size = max(1, -(-rows // n_iter))
    g_drive = torch.empty_like(drive) if needs[0] else None
    totals = None
    for start in range(0, rows, size):
        part = slice(start, start + size)
        _, _, codes, residuals = _iterate(drive[part], gram, inv_steps, thresholds, first_kept=0, atoms=atoms)
        grads = _adjoint(codes, residuals, None if grad_codes is None else grad_codes[part],
                         None if grad_pre is None else grad_pre[part], gram, inv_steps, thresholds, 0, needs, atoms)
        if g_drive is not None:
            g_drive[part] = grads[0]
        totals = grads[1:] if totals is None else [None if t is None else t + g for t, g in zip(totals, grads[1:])]
    return (g_drive, *totals)


def _adjoint(codes, residuals, grad_codes, grad_pre, gram, inv_steps, thresholds, first_kept, needs, atoms=None):
    """The adjoint recursion over the kept iterations, last first: gradients of (drive, gram, inv_steps,
    thresholds), None for a drive or gram that needs none."""
    n_kept = len(residuals)
    need_drive, need_gram = needs[0], needs[1]
    g_drive = torch.zeros_like(residuals[0]) if need_drive else None
    g_gram = torch.zeros_like(gram) if need_gram else None
    g_steps, g_thr = torch.zeros_like(inv_steps), torch.zeros_like(thresholds)
    g_a = grad_codes if grad_codes is not None else torch.zeros_like(residuals[0])
    for j in range(n_kept - 1, -1, -1):
        t, sign = first_kept + j, codes[j + 1].sign()
        g_theta = -(g_a * sign).sum(0)  # d soft(u, theta) / d theta = -sign(u) on the support, 0 off it
        g_thr[t] = g_theta.sum(-1, keepdim=True) if thresholds.shape[1] == 1 else g_theta
        g_u = g_a * sign.abs_()  # d soft(u, theta) / du = 1 on the support, 0 off it
        if j == n_kept - 1 and grad_pre is not None:
            g_u += grad_pre
        g_steps[t] = torch.dot(g_u.flatten(), residuals[j].flatten())
        g_r = g_u * inv_steps[t]
        if g_drive is not None:
            g_drive += g_r
        if j > 0:
            g_a = _minus_times_gram(g_u, g_r, gram, atoms)  # g_u - g_r G^T, G symmetric
        if t > 0 and g_gram is not None:
            g_gram.addmm_(codes[j].T, g_r, alpha=-1)
    return g_drive, g_gram, g_steps, g_thr
