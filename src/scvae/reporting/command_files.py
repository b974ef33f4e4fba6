"""The files ``scvae eval`` and ``scvae segment-eval`` write: the edge where their results (computed by
:mod:`scvae.evaluation.report` and :mod:`scvae.downstream.segmentation_eval`) become JSON, Markdown and PNG."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..downstream.segmentation_eval import class_legend, result_json, segmentation_table
from ..evaluation.plots import panel_figure, usage_histogram
from ..evaluation.report import markdown_table, markdown_text
from ..files import write_text_atomic

EVAL_FILES = ("eval.json", "eval.md", "usage_histogram.png")


def write_eval(result: dict[str, Any], out: str | os.PathLike) -> dict[str, Path]:
    """eval.json, eval.md and a usage histogram PNG (atoms / codes, or KL per channel) in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {kind: out / name for kind, name in zip(("json", "md", "png"), EVAL_FILES)}
    write_text_atomic(paths["json"], json.dumps(result, indent=2) + "\n")
    scalars = {**result["metrics"], **{k: v for k, v in result["diagnostics"].items() if isinstance(v, (int, float))}}
    md = [f"# Evaluation of a {result['model_type']} model on {result['data']['n_images']} images",
          "", markdown_table({"value": scalars}, list(scalars)), ""]
    md += [f"- {line}" for line in result["skipped"]]
    md += ["", "Conventions: " + "; ".join(f"{k}: {v}" for k, v in result["conventions"].items())]
    write_text_atomic(paths["md"], "\n".join(md) + "\n")
    usage_histogram(result, paths["png"])
    return paths


SEGMENT_EVAL_FILES = ("segment_eval.json", "segment_eval.md", "overlays.png")


def write_segmentation_eval(result: dict[str, Any], out: str | os.PathLike, title: str = "") -> dict[str, Path]:
    """segment_eval.json, segment_eval.md and overlays.png in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {kind: out / name for kind, name in zip(("json", "md", "png"), SEGMENT_EVAL_FILES)}
    write_text_atomic(paths["json"], json.dumps({"title": title, **result_json(result)}, indent=2) + "\n")
    ignore = f", ignoring label(s) {', '.join(map(str, result['ignore']))}" if result["ignore"] else ""
    write_text_atomic(paths["md"], (
        f"# Unsupervised segmentation{': ' + markdown_text(title) if title else ''}\n\n"
        f"{result['n_images']} images, k = {result['k']}, position weight {result['position_weight']}, "
        f"whitened components {result['whiten'] or 'off'}, refinement {result['refine']}{ignore}. "
        "Clusters matched to classes per image (Hungarian); mIoU over classes with IoU from set-wide sums; "
        "ARI/NMI averaged over images.\n\n"
        + segmentation_table(result)))
    if result["overlay_rows"]:
        panel_figure(result["overlay_rows"], result["overlay_titles"], paths["png"], result["overlay_names"],
                     legend=class_legend(result))
    return paths
