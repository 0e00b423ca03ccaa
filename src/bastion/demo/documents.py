"""The knowledge base (articles as Markdown, help-center HTML and PDF) and the marketing folder."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from pathlib import Path

from fpdf import FPDF

from bastion.demo.content import ARTICLES, BRAND_VOICE, CAMPAIGNS, HTML_PAGE, KB_ACL
from bastion.demo.files import write_json, write_text
from bastion.demo.records import COMPANY_NAME


def write_kb(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)  # a PDF may come first
    for filename, markdown in ARTICLES:
        path = folder / filename
        if filename.endswith(".md"):
            write_text(path, markdown)
        elif filename.endswith(".html"):
            write_text(path, _html_page(markdown))
        else:
            path.write_bytes(_pdf_document(markdown))
    write_json(folder / "_acl.json", KB_ACL)


def write_marketing(folder: Path) -> None:
    write_text(folder / "brand-voice.md", BRAND_VOICE)
    for filename, text in CAMPAIGNS:
        write_text(folder / "campaigns" / filename, text)
    write_json(folder / "_acl.json", {"default": ["marketing", "exec"]})


def _blocks(markdown: str) -> list[tuple[str, list[str]]]:
    """The small Markdown subset the articles use: headings, paragraphs, lists, code fences."""
    blocks: list[tuple[str, list[str]]] = []
    lines = iter(markdown.strip().split("\n"))
    after_blank = True
    for line in lines:
        list_item = re.match(r"(- |\d+\. )(.*)", line)
        heading = re.match(r"(#{1,3}) (.*)", line)
        kind = blocks[-1][0] if blocks and not after_blank else ""
        if line.startswith("```"):
            code: list[str] = []
            for inner in lines:
                if inner.startswith("```"):
                    break
                code.append(inner)
            blocks.append(("code", code))
        elif heading:
            blocks.append((f"h{len(heading[1])}", [heading[2]]))
        elif list_item:
            list_kind = "ul" if list_item[1] == "- " else "ol"
            if blocks and blocks[-1][0] == list_kind:
                blocks[-1][1].append(list_item[2])
            else:
                blocks.append((list_kind, [list_item[2]]))
        elif line.strip() and kind in ("p", "ul", "ol"):
            blocks[-1][1][-1] += " " + line.strip()
        elif line.strip():
            blocks.append(("p", [line.strip()]))
        after_blank = not line.strip()
    return blocks


def _inline_html(text: str) -> str:
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)


def _plain(text: str) -> str:
    return text.replace("**", "").replace("`", "")


def _html_page(markdown: str) -> str:
    blocks = _blocks(markdown)
    title = blocks[0][1][0]
    body: list[str] = []
    for kind, lines in blocks:
        if kind in ("h1", "h2", "h3", "p"):
            body.append(f"<{kind}>{_inline_html(lines[0])}</{kind}>")
        elif kind in ("ul", "ol"):
            items = "".join(f"\n  <li>{_inline_html(item)}</li>" for item in lines)
            body.append(f"<{kind}>{items}\n</{kind}>")
        else:
            body.append(f"<pre><code>{html.escape(chr(10).join(lines))}</code></pre>")
    return HTML_PAGE.format(title=html.escape(title), body="\n".join(body))


def _pdf_document(markdown: str) -> bytes:
    blocks = _blocks(markdown)
    pdf = FPDF(format="Letter")
    pdf.set_creation_date(datetime(2026, 1, 5, tzinfo=UTC))  # otherwise "now", breaking sameness
    pdf.set_title(blocks[0][1][0])
    pdf.set_author(f"{COMPANY_NAME} Support")
    pdf.set_auto_page_break(True, margin=18)
    pdf.add_page()

    def cell(text: str, height: float, indent: float = 0) -> None:
        pdf.set_x(pdf.l_margin + indent)
        pdf.multi_cell(pdf.epw - indent, height, text, new_x="LMARGIN", new_y="NEXT")

    styles = {"h1": ("B", 18, 9.0), "h2": ("B", 13, 7.0), "h3": ("B", 11, 6.0)}
    for kind, lines in blocks:
        if kind in styles:
            style, size, height = styles[kind]
            pdf.set_font("Helvetica", style, size)
            pdf.ln(3 if kind != "h1" else 0)
            cell(_plain(lines[0]), height)
        elif kind == "p":
            pdf.set_font("Helvetica", "", 10.5)
            cell(_plain(lines[0]), 5.5)
        elif kind in ("ul", "ol"):
            pdf.set_font("Helvetica", "", 10.5)
            for n, item in enumerate(lines, 1):
                marker = "-" if kind == "ul" else f"{n}."
                cell(f"{marker} {_plain(item)}", 5.5, indent=4)
        else:
            pdf.set_font("Courier", "", 9)
            cell("\n".join(lines), 4.5, indent=4)
        pdf.ln(2)
    return bytes(pdf.output())
