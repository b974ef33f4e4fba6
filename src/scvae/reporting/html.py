"""A minimal, dependency-free HTML page builder: every image is embedded as a data URI."""
from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from typing import Any, Sequence

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { border-bottom: 2px solid #3b6ea5; padding-bottom: .2em; }
h2 { margin-top: 2em; color: #3b6ea5; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th { background: #eef2f7; }
td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0; }
figure img { max-width: 100%; image-rendering: pixelated; border: 1px solid #ddd; }
figcaption { font-size: .85em; color: #555; }
.note { color: #555; font-size: .9em; }
"""


def image(path: str | os.PathLike, caption: str = "") -> str:
    """An <img> with the PNG at ``path`` embedded as base64, in a captioned figure."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    alt = html.escape(caption or Path(path).stem)
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{data}" alt="{alt}">{cap}</figure>'


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape("" if value is None else str(value))


def table(rows: dict[str, dict[str, Any]], columns: Sequence[str], corner: str = "") -> str:
    """One HTML table row per entry of ``rows``; missing cells are left empty."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in [corner, *columns])
    body = "".join(f"<tr><td>{html.escape(name)}</td>" + "".join(f"<td>{_cell(row.get(c))}</td>" for c in columns)
                   + "</tr>" for name, row in rows.items())
    return f"<table><tr>{head}</tr>{body}</table>"


def key_values(values: dict[str, Any]) -> str:
    """A two-column table of names and values."""
    return table({k: {"value": v} for k, v in values.items()}, ["value"])


def paragraph(text: str, css: str = "") -> str:
    return f'<p class="{css}">{html.escape(text)}</p>' if css else f"<p>{html.escape(text)}</p>"


def section(title: str, *parts: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{''.join(parts)}</section>"


def page(title: str, sections: Sequence[str]) -> str:
    """The whole self-contained document."""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{''.join(sections)}</body></html>\n")
