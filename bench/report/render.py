"""The report's two renderings of one list of sections: Markdown (index.md) and self-contained HTML
(index.html: plots embedded as data URIs, nothing fetched; wide tables scroll inside the page)."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass
class Section:
    """One part of the report. Built once (`sections`), rendered to Markdown and to HTML, so both
    outputs carry the same content. Rendered in this order: heading, table, bullets, images, notes."""

    title: str = ""  # "" for the untitled lines under the page title
    table: pd.DataFrame | None = None
    floatfmt: str = ".3g"
    missing: str = ""  # how an empty cell reads
    literal: bool = False  # cells are text already: a plain pipe table, written as-is
    items: list[str] = field(default_factory=list)  # a bullet list
    images: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # paragraphs
    lead: list[str] = field(default_factory=list)  # paragraphs before the table (**bold** and `code` in both)
    css: str = ""  # the HTML section's class ("decision": the boxed block at the top)


def _md_table(s: Section) -> str:
    if not s.literal:
        return s.table.to_markdown(index=False, floatfmt=s.floatfmt, missingval=s.missing)
    def line(cells: list) -> str:
        return "".join(f"| {c} " for c in cells) + "|"

    rule = "|---" * len(s.table.columns) + "|"
    return "\n".join([line(s.table.columns), rule, *(line(r) for r in s.table.astype(str).values.tolist())])


def to_markdown(title: str, parts: list[Section]) -> str:
    lines = [f"# {title}", ""]
    for s in parts:
        if s.title:
            lines += [f"## {s.title}", ""]
        for paragraph in s.lead:
            lines += [paragraph, ""]
        if s.table is not None:
            lines += [_md_table(s), ""]
        if s.items:
            lines += [f"- {item}" for item in s.items] + [""]
        if s.images:
            lines += [f"![{p.stem}]({p.name})" for p in s.images] + [""]
        for note in s.notes:
            lines += [note, ""]
    return "\n".join(lines)


STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;"
         "font-size:12px;margin-bottom:.8em}th,td{padding:3px 7px;border-bottom:1px solid #ddd;text-align:right}"
         "th{background:#f3f3f3}td:first-child{text-align:left}table.variants td:nth-child(-n+6){text-align:left}"
         "p.note{font-size:13px;color:#555;max-width:70em}img{max-width:100%}"
         "figure{display:inline-block;margin:1em;max-width:46%}div.scroll{max-width:100%;overflow-x:auto}"
         "section.decision{border:2px solid #2a7;border-radius:6px;padding:.2em 1.2em .6em;background:#f4fbf6;"
         "max-width:70em;margin-bottom:1.5em}section.decision h2{margin-top:.6em}"
         "p.lead{font-size:15px;max-width:70em}section.decision li{font-size:14px;margin:.3em 0;max-width:68em}"
         "code{font-size:90%;background:#eef;padding:0 .2em}")


def _html_table(s: Section) -> str:
    cls = s.title.split()[0].lower().strip(":") if s.title else ""
    table = s.table.to_html(index=False, float_format=lambda x: f"{x:{s.floatfmt}}", na_rep=s.missing or "—",
                            border=0, classes=cls or None)
    return f'<div class="scroll">{table}</div>'  # a wide table scrolls inside the page, not off its edge


def _inline(text: str) -> str:
    """Escaped text with the Markdown the sections use inline: **bold** and `code`."""
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def to_html(title: str, parts: list[Section]) -> str:
    """The same sections as self-contained HTML: plots embedded as data URIs, nothing fetched."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    for s in parts:
        if s.css:
            body.append(f'<section class="{s.css}">')
        if s.title:
            body.append(f"<h2>{html.escape(s.title)}</h2>")
        body += [f'<p class="lead">{_inline(p)}</p>' for p in s.lead]
        if s.table is not None:
            body.append(_html_table(s))
        if s.items:
            body.append("<ul>" + "".join(f"<li>{_inline(i) if s.css else html.escape(i)}</li>" for i in s.items)
                        + "</ul>")
        body += [f'<figure><img alt="{html.escape(p.stem)}" src="data:image/png;base64,'
                 f'{base64.b64encode(p.read_bytes()).decode()}"><figcaption>{html.escape(p.stem.replace("_", " "))}'
                 "</figcaption></figure>" for p in s.images]
        body += [f'<p class="{"note" if s.title else "meta"}">{_inline(n) if s.css else html.escape(n)}</p>'
                 for n in s.notes]
        if s.css:
            body.append("</section>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")
