"""The least-squares refit's cost in training: the preset's float32 Cholesky refit (``scvae.sparse.refit``)
against the float64 LU refit it replaced, written out below as the reference, on the same supports.

Times the refit alone and the whole bottleneck (LISTA choice + refit + synthesis + loss, forward and
backward) at the small presets' size (d 64, K 256, k 33, 64 positions per image) for T = 4 and 16;
the variants are timed alternately in one process and the median of ``--repeats`` passes is reported,
with the largest difference between the two refits' values (relative to the largest value). Run it with
nothing else on the machine.

    python bench/refit_speed.py [--batch 32] [--repeats 20] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import scvae.sparse.lista as lista_module
from scvae.sparse import SparseCodingBottleneck, dct_dictionary
from scvae.sparse.lista import largest_indices
from scvae.sparse.refit import REFIT_RIDGE, refit_on_support


def refit_float64_lu(a: torch.Tensor, drive: torch.Tensor, gram: torch.Tensor, keep: torch.Tensor,
                     ridge: float = REFIT_RIDGE) -> torch.Tensor:
    """The previous refit: float64 sub-Grams masked for empty slots, solved by LU with autograd's backward."""
    k = keep.shape[1]
    on = (a.gather(1, keep) != 0).double()
    sub = gram.double()[keep[:, :, None], keep[:, None, :]] * (on[:, :, None] * on[:, None, :])
    sub = sub + ridge * torch.eye(k, device=a.device, dtype=torch.float64)
    rhs = drive.double().gather(1, keep) * on
    values = torch.linalg.solve(sub, rhs[..., None]).squeeze(-1)
    return torch.zeros_like(a).scatter(1, keep, values.to(a.dtype))


REFITS = {"float32 Cholesky (preset)": refit_on_support, "float64 LU (before)": refit_float64_lu}


def timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    torch.manual_seed(0)
    n = args.batch * 64
    dictionary = dct_dictionary(64, 256)
    gram = dictionary.T @ dictionary
    z = torch.randn(n, 64, requires_grad=True)
    drive_fixed = (z @ dictionary).detach()
    keep = largest_indices(torch.nn.functional.softshrink(drive_fixed, 0.5), 33, dim=1)
    a = torch.zeros_like(drive_fixed).scatter(1, keep, drive_fixed.gather(1, keep))
    reference = refit_float64_lu(a, drive_fixed, gram, keep)
    rows: dict[str, dict[str, float]] = {}
    times: dict[str, list[float]] = {}

    def refit_pass(fn):
        return lambda: fn(a, z @ dictionary, gram, keep).square().sum().backward()

    def bottleneck_pass(fn, n_iter):
        layer = SparseCodingBottleneck(64, 256, n_iter=n_iter, max_active=33, refit=True, balance_step=1e-3)
        x = torch.randn(args.batch, 64, 8, 8, requires_grad=True)

        def run():
            lista_module.refit_on_support = fn  # what LISTA.iterate calls
            out = layer(x)
            (out.latent_hat.square().mean() + out.loss).backward()
        return run

    passes = {}
    for name, fn in REFITS.items():
        passes[("refit alone", name)] = refit_pass(fn)
        for n_iter in (4, 16):
            passes[(f"bottleneck, T = {n_iter}", name)] = bottleneck_pass(fn, n_iter)
    try:
        for run in passes.values():  # warm-up
            run()
        for _ in range(args.repeats):
            for key, run in passes.items():
                times.setdefault(" | ".join(key), []).extend(timed(run, 1))
    finally:
        lista_module.refit_on_support = refit_on_support
    print(f"batch {args.batch} ({n} positions), d 64, K 256, k 33, {torch.get_num_threads()} threads, "
          f"median of {args.repeats}, forward + backward")
    print("| what | refit | ms | ratio to float64 LU | max value difference |\n|---|---|---|---|---|")
    for what in dict.fromkeys(key[0] for key in passes):
        before = statistics.median(times[f"{what} | float64 LU (before)"])
        for name, fn in REFITS.items():
            ms = statistics.median(times[f"{what} | {name}"])
            diff = float((fn(a, drive_fixed, gram, keep) - reference).abs().max() / reference.abs().max())
            rows[f"{what} | {name}"] = {"ms": ms * 1e3, "ratio": ms / before, "max_rel_difference": diff}
            print(f"| {what} | {name} | {ms * 1e3:.1f} | {ms / before:.2f} | {diff:.1e} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"batch": args.batch, "threads": torch.get_num_threads(), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
