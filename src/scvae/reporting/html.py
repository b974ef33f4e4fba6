"""A minimal, dependency-free HTML page builder: every image is embedded as a data URI."""
from __future__ import annotations

import base64
import html
import os
import re
from pathlib import Path
from typing import Any, Sequence

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { border-bottom: 2px solid #3b6ea5; padding-bottom: .2em; }
h2 { margin-top: 2em; color: #3b6ea5; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th { background: #eef2f7; }
td:first-child, th:first-child, td.text { text-align: left; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; image-rendering: pixelated; border: 1px solid #ddd; }
nav.toc { background: #f6f8fb; padding: .5em 1em; border: 1px solid #dde3ea; }
nav.toc a { margin-right: 1.2em; }
figcaption { font-size: .85em; color: #555; }
.note { color: #555; font-size: .9em; }
"""


MIN_WIDTH, MAX_WIDTH = 480, 960  # small PNGs are drawn larger (pixelated), none wider than the page


def image(path: str | os.PathLike, caption: str = "") -> str:
    """An <img> with the PNG at ``path`` embedded as base64, in a captioned figure; images narrower than
    MIN_WIDTH px are scaled up by a whole factor so that 32 px crops stay readable."""
    import io

    from PIL import Image

    try:
        raw = Path(path).read_bytes()
        with Image.open(io.BytesIO(raw)) as im:  # the width from the bytes already read
            im.verify()
            width = im.width
    except (OSError, SyntaxError, ValueError):  # PIL's UnidentifiedImageError is an OSError
        return paragraph(f"{Path(path).name}: damaged or not a PNG, so it is not shown.", "note")
    shown = min(MAX_WIDTH, width * max(1, -(-MIN_WIDTH // width))) if width < MIN_WIDTH else width
    data = base64.b64encode(raw).decode("ascii")
    alt = html.escape(caption or Path(path).stem)
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{data}" alt="{alt}" width="{shown}">{cap}</figure>'


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape("" if value is None else str(value))


def _td(value: Any) -> str:
    css = ' class="text"' if isinstance(value, str) else ""  # text reads left-aligned, numbers right-aligned
    return f"<td{css}>{_cell(value)}</td>"


def table(rows: dict[str, dict[str, Any]], columns: Sequence[str], corner: str = "") -> str:
    """One HTML table row per entry of ``rows``; missing cells are left empty."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in [corner, *columns])
    body = "".join(f"<tr><td>{html.escape(name)}</td>" + "".join(_td(row.get(c)) for c in columns) + "</tr>"
                   for name, row in rows.items())
    return f"<table><tr>{head}</tr>{body}</table>"


def key_values(values: dict[str, Any]) -> str:
    """A two-column table of names and values."""
    return table({k: {"value": v} for k, v in values.items()}, ["value"])


def paragraph(text: str, css: str = "") -> str:
    return f'<p class="{css}">{html.escape(text)}</p>' if css else f"<p>{html.escape(text)}</p>"


def anchor(title: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in title.lower()).strip("-")


def section(title: str, *parts: str) -> str:
    return f'<section id="{anchor(title)}"><h2>{html.escape(title)}</h2>{"".join(parts)}</section>'


def _toc(sections: Sequence[str]) -> str:
    titles = re.findall(r'<section id="([^"]+)"><h2>(.*?)</h2>', "".join(sections))
    links = "".join(f'<a href="#{i}">{t}</a>' for i, t in titles)
    return f'<nav class="toc"><strong>Contents</strong>: {links}</nav>' if titles else ""


def page(title: str, sections: Sequence[str]) -> str:
    """The whole self-contained document."""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{_toc(sections)}{''.join(sections)}"
            "</body></html>\n")
