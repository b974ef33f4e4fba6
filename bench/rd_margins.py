"""One family's PSNR against others' at equal rate, from rate-distortion points already measured.

Reads the points of ``scvae rd`` (rd.json) or ``bench/rd_points.py`` (points.json, with its merged points),
drops a point merged twice, averages the seeds of each setting, and for every setting of ``--family``
prints the ``--against`` family's envelope at the same bits per image and the difference
(``scvae.evaluation.equal_rate``). Trains nothing.

    python bench/rd_margins.py runs/rd-points/points.json runs/cifar-rd/rd.json --family scvae \\
        --against rvq --against vqvae-strong --against fsq [--exclude decay=0.8] [--json margins.json]
    python bench/rd_margins.py runs/cifar-rd/rd.json --family scvae --against others  # the whole frontier
    python bench/rd_margins.py runs/cifar-rd/rd.json --family scvae --against others --without vae-kl  # coded rates

Writes nothing unless ``--json`` (every row) or ``--png`` (every family's envelope, its other points as
crosses) is given.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scvae.evaluation.equal_rate import equal_rate_margins, setting_label


def load_points(paths: list[str], exclude: list[str]) -> list[dict]:
    points = []
    for path in paths:
        data = json.loads(Path(path).read_text())
        points += data.get("points", []) + data.get("merged", [])
    unique = {(p["family"], json.dumps(p.get("setting")), p["bits_per_image"], p["psnr"]): p for p in points}
    return [p for p in unique.values() if not any(text in setting_label(p) for text in exclude)]


def table(rows: list[dict], family: str, against: str) -> str:
    def db(value: float | None) -> str:
        return "" if value is None else f"{value:+.2f}"

    lines = [f"| {family} setting | seeds | bits per image | PSNR (dB) | {against} at that rate | margin | per seed |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        base = "" if r["baseline"] is None else f"{r['baseline']:.2f}"
        lines.append(f"| {r['setting']} | {r['seeds']} | {r['bits']:.0f} | {r['psnr']:.2f} | {base} | "
                     f"{db(r['margin'])} | {', '.join(db(m) or 'out of range' for m in r['margins'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("points", nargs="+", help="rd.json or points.json files")
    parser.add_argument("--family", default="scvae")
    parser.add_argument("--against", action="append", required=True,
                        help="a family, or 'others': the envelope of every other family together")
    parser.add_argument("--exclude", action="append", default=[], help="drop settings containing this text")
    parser.add_argument("--without", action="append", default=[],
                        help="drop a whole family (e.g. vae-kl, to compare coded rates only)")
    parser.add_argument("--json", help="also write every row here")
    parser.add_argument("--png", help="also draw every family's points and envelope here")
    parser.add_argument("--title", default="held-out rate-distortion")
    args = parser.parse_args(argv)
    try:
        points = [p for p in load_points(args.points, args.exclude) if p["family"] not in args.without]
        results = {against: equal_rate_margins(points, args.family, against) for against in args.against}
    except (OSError, ValueError, KeyError) as err:
        print(f"rd_margins: {err}", file=sys.stderr)
        return 2
    for against, rows in results.items():
        print(f"\n{args.family} against {against} (seed means; margin = PSNR minus {against}'s envelope)\n")
        print(table(rows, args.family, against))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    if args.png:
        from scvae.evaluation.plots import rate_distortion_figure

        rate_distortion_figure(points, args.png, args.title)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
