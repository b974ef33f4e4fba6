"""Lasso objective gap after T iterations: ISTA vs FISTA vs LISTA trained on the lasso objective.

Prints a table and writes bench/results/lista_convergence.json. CPU, about a minute.
    python bench/lista_convergence.py [--dim 16] [--atoms 121] [--lam 0.3]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from scvae import LISTA, dct_dictionary, fista, ista, lasso_objective


def sparse_signals(dictionary: torch.Tensor, n: int, k: int, noise: float, g: torch.Generator) -> torch.Tensor:
    a = torch.zeros(n, dictionary.shape[1])
    a.scatter_(1, torch.randint(0, dictionary.shape[1], (n, k), generator=g), torch.randn(n, k, generator=g))
    return a @ dictionary.T + noise * torch.randn(n, dictionary.shape[0], generator=g)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--atoms", type=int, default=121)
    p.add_argument("--lam", type=float, default=0.3)
    p.add_argument("--train-steps", type=int, default=300)
    args = p.parse_args()
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    D = dct_dictionary(args.dim, args.atoms)
    pool = sparse_signals(D, 2048, 4, 0.05, g)
    test = sparse_signals(D, 2000, 4, 0.05, g)
    best = float(lasso_objective(test, D, fista(test, D, args.lam, 3000), args.lam).mean())
    rows = []
    for T in (1, 4, 8, 16, 32):
        layer = LISTA(D, T, args.lam, untied=True, per_iteration=True, threshold_per_atom=True)
        opt = torch.optim.Adam(layer.parameters(), lr=1e-3)
        for _ in range(args.train_steps):
            z = pool[torch.randint(0, len(pool), (256,))]
            loss = lasso_objective(z, D, layer(z), args.lam).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            gaps = {"ista": ista(test, D, args.lam, T), "fista": fista(test, D, args.lam, T), "lista": layer(test)}
            row = {"T": T}
            for name, codes in gaps.items():
                row[f"{name}_gap"] = float(lasso_objective(test, D, codes, args.lam).mean()) - best
                row[f"{name}_active"] = float((codes != 0).float().mean())
        rows.append(row)
    print(f"dictionary {args.dim}x{args.atoms}, lam {args.lam}; objective gap to the lasso optimum ({best:.4f})")
    print(f"{'T':>3} | {'ISTA gap':>9} {'FISTA gap':>9} {'LISTA gap':>9} | {'ISTA act':>8} {'FISTA act':>9} {'LISTA act':>9}")
    for r in rows:
        print(f"{r['T']:>3} | {r['ista_gap']:9.4f} {r['fista_gap']:9.4f} {r['lista_gap']:9.4f} | "
              f"{r['ista_active']:8.3f} {r['fista_active']:9.3f} {r['lista_active']:9.3f}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "lista_convergence.json").write_text(json.dumps({"args": vars(args), "optimum": best, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
