"""Paired margins between features probed in separate runs on the same test images.

Each argument is ``RESULT.json:FEATURE`` (a ``scvae probe --json`` file, or one model's entry of
``bench/probe_families.py``'s JSON given as ``FILE.json#MODEL:FEATURE``). The first is compared with each of
the others: its accuracy minus theirs, with the 95 % paired bootstrap interval over the test images
(:func:`scvae.downstream.probe.paired_from_dicts`). Prints a table and, with ``--json``, writes it:

    python bench/probe_margins.py docs/results/probe_scvae_learned.json:kmeans@2:quadrant-sum \\
        docs/results/probe_ae_mask25_d4.json:kmeans@4:quadrant-sum --json margins.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scvae.downstream.probe import paired_from_dicts
from scvae.errors import ScvaeError


def read(argument: str) -> tuple[dict, str]:
    """``FILE.json[#MODEL]:FEATURE`` -> (the result dict, the feature name)."""
    path, _, feature = argument.partition(".json")
    entry, _, feature = feature.partition(":")
    try:
        data = json.loads(Path(path + ".json").read_text())
    except (OSError, ValueError) as err:
        raise ScvaeError(f"{path}.json: cannot read ({err})") from None
    if entry.startswith("#"):
        data = data.get("results", {}).get(entry[1:])
        if data is None:
            raise ScvaeError(f"{argument}: no model {entry[1:]!r} in the file")
    if not feature:
        raise ScvaeError(f"{argument}: name the feature, FILE.json:FEATURE")
    return data, feature


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="FILE.json[#MODEL]:FEATURE; the first is compared with the rest")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    try:
        if len(args.results) < 2:
            raise ScvaeError("give at least two FILE.json:FEATURE arguments")
        first, feature = read(args.results[0])
        rows = []
        for other in args.results[1:]:
            data, other_feature = read(other)
            diff, lo, hi = paired_from_dicts(first, feature, data, other_feature)
            rows.append({"against": other, "difference": diff, "interval": [lo, hi]})
    except ScvaeError as err:
        print(f"probe_margins: {err}", file=sys.stderr)
        return 2
    print(f"{args.results[0]} minus\n\n| against | points | 95 % paired interval |\n|---|---|---|")
    for r in rows:
        print(f"| {r['against']} | {100 * r['difference']:+.1f} | [{100 * r['interval'][0]:+.1f}, "
              f"{100 * r['interval'][1]:+.1f}] |")
    if args.json:
        Path(args.json).write_text(json.dumps({"reference": args.results[0], "margins": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
