"""A report as a list of blocks, rendered once to Markdown and once to self-contained HTML.

Keeping the content separate from the two renderers means the Markdown and HTML reports
cannot disagree: both are views of the same blocks.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass


@dataclass(frozen=True)
class Text:
    """A table cell with emphasis: bold for the best in a column, underline for negatives."""

    text: str
    bold: bool = False
    underline: bool = False


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str | Text]]


@dataclass(frozen=True)
class Figure:
    """A PNG image; `name` is its file name next to the Markdown report."""

    name: str
    png: bytes
    caption: str


Block = Heading | Paragraph | Table | Figure


def _as_text(cell: str | Text) -> Text:
    return cell if isinstance(cell, Text) else Text(cell)


def to_markdown(blocks: list[Block], figure_dir: str) -> str:
    """Markdown; figures are linked as `<figure_dir>/<name>` (the caller writes the files)."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            out.append(block.text)
        elif isinstance(block, Table):
            out.append(_markdown_table(block))
        else:
            out.append(f"![{block.caption}]({figure_dir}/{block.name})\n\n*{block.caption}*")
    return "\n\n".join(out) + "\n"


def _markdown_table(table: Table) -> str:
    def cell(c: str | Text) -> str:
        t = _as_text(c)
        text = t.text.replace("|", "\\|")
        text = f"<ins>{text}</ins>" if t.underline else text
        return f"**{text}**" if t.bold else text

    lines = ["| " + " | ".join(cell(h) for h in table.header) + " |"]
    lines.append("|" + "|".join([":---"] + ["---:"] * (len(table.header) - 1)) + "|")
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


_STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #eee; }
figure { margin: 1em 0; }
img { max-width: 100%; }
figcaption { font-style: italic; }
"""


def to_html(blocks: list[Block], title: str) -> str:
    """One HTML file with inline CSS and images as base64 data URIs: nothing external."""
    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{html.escape(block.text)}</p>")
        elif isinstance(block, Table):
            body.append(_html_table(block))
        else:
            data = base64.b64encode(block.png).decode("ascii")
            alt = html.escape(block.caption, quote=True)
            body.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{alt}">'
                f"<figcaption>{html.escape(block.caption)}</figcaption></figure>"
            )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _html_table(table: Table) -> str:
    def cell(c: str | Text, tag: str) -> str:
        t = _as_text(c)
        text = html.escape(t.text)
        text = f"<u>{text}</u>" if t.underline else text
        text = f"<b>{text}</b>" if t.bold else text
        return f"<{tag}>{text}</{tag}>"

    head = "<tr>" + "".join(cell(h, "th") for h in table.header) + "</tr>"
    rows = "".join("<tr>" + "".join(cell(c, "td") for c in row) + "</tr>" for row in table.rows)
    return f"<table><thead>{head}</thead><tbody>{rows}</tbody></table>"
