"""LISTA's cost in training: forward + backward time and the memory saved for backward, hand-written
backward (scvae: every iterate kept; the truncated ``grad_iterations=1``; the exact ``recompute``, which
keeps only its input) against plain autograd through the same iterations, for several T.

Memory is the bytes of the tensors autograd keeps for the backward pass (counted with saved-tensor
hooks, so it is exact and device-independent); time is the median of ``--repeats`` forward + backward
passes, both variants timed alternately in one process. Run it with nothing else on the machine.

    python bench/lista_speed.py [--scale paper|small] [--iters 1,4,16,30] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from scvae.sparse import dct_dictionary
from scvae.sparse.unrolled_ista import unrolled_ista, unrolled_ista_autograd

# (d, K, positions per image, batch): the paper's f16 config and the small-32 preset
SCALES = {"paper": (256, 512, 16 * 16, 8), "small": (64, 121, 8 * 8, 32)}


def inputs(d: int, k: int, n: int, n_iter: int):
    dictionary = dct_dictionary(d, k)
    z = torch.randn(n, d, requires_grad=True)
    c = float(torch.linalg.matrix_norm(dictionary, 2) ** 2)
    raw = torch.zeros(2, requires_grad=True)  # stand-ins for the learnable step and threshold
    inv_steps = (1.0 / (c * (1 + torch.nn.functional.softplus(raw[0] - 6)))).expand(n_iter)
    thresholds = (0.3 + torch.nn.functional.softplus(raw[1] - 6)).expand(n_iter, 1) * inv_steps[:, None]
    return z, dictionary, inv_steps, thresholds, raw


def step(fn, z, dictionary, inv_steps, thresholds, **kwargs) -> int:
    """One forward + backward; returns the bytes saved for backward."""
    saved: dict[int, int] = {}

    def pack(t):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        codes, _ = fn(z @ dictionary, dictionary.T @ dictionary, inv_steps, thresholds, **kwargs)
    codes.square().sum().backward(retain_graph=True)
    return sum(saved.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="paper", choices=list(SCALES))
    parser.add_argument("--iters", default="1,4,16,30")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.manual_seed(0)
    d, k, positions, batch = SCALES[args.scale]
    variants = {"autograd": (unrolled_ista_autograd, {}), "scvae": (unrolled_ista, {}),
                "scvae, grad_iterations=1": (unrolled_ista, {"grad_iterations": 1}),
                "scvae, recompute (exact)": (unrolled_ista, {"recompute": True})}
    rows = []
    print(f"scale {args.scale}: d={d}, K={k}, N={positions * batch} rows, {torch.get_num_threads()} threads")
    print("| T | variant | saved for backward (MiB) | memory / same variant at the first T | ms / forward+backward "
          "| speed-up over autograd |\n|---|---|---|---|---|---|")
    first_memory: dict[str, int] = {}
    for n_iter in [int(t) for t in args.iters.split(",")]:
        data = inputs(d, k, positions * batch, n_iter)
        times: dict[str, list[float]] = {v: [] for v in variants}
        memory = {}
        for _ in range(args.repeats + 1):  # the first round warms up
            for name, (fn, kw) in variants.items():
                start = time.perf_counter()
                memory[name] = step(fn, *data[:4], **kw)
                times[name].append(time.perf_counter() - start)
        ref = statistics.median(times["autograd"][1:])
        for name in variants:
            ms = statistics.median(times[name][1:])
            first_memory.setdefault(name, memory[name])
            rows.append({"n_iter": n_iter, "variant": name, "saved_mib": memory[name] / 2**20, "ms": 1000 * ms,
                         "memory_ratio": memory[name] / first_memory[name], "speedup": ref / ms})
            r = rows[-1]
            print(f"| {n_iter} | {name} | {r['saved_mib']:.1f} | {r['memory_ratio']:.2f} | {r['ms']:.1f} | "
                  f"{r['speedup']:.2f}x |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"scale": args.scale, "d": d, "n_atoms": k, "rows_per_batch": positions * batch,
                       "threads": torch.get_num_threads(), "results": rows}, f, indent=2)


if __name__ == "__main__":
    main()
