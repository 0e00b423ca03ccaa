"""A folder (or zip) of documents: Markdown, plain text, HTML and PDF.

Structure is kept as Markdown headings (`#`, `##`) so the chunker can split on sections;
HTML navigation, scripts and styles are dropped. Who may read each file comes from an
`_acl.json` beside them ({"default": [...], "files": {"name.md": [...]}}), else from the
source's `acl`; a file with neither is ingested but denied to everyone.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import Any

from bastion.config import SourceConfig
from bastion.grounding.connectors.tree import SourceTree
from bastion.grounding.records import Skipped, SourceRecord, parse_acl

Item = SourceRecord | Skipped
ACL_FILE = "_acl.json"
TEXT_SUFFIXES = (".md", ".markdown", ".txt", ".text")
HTML_SUFFIXES = (".html", ".htm")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def read_documents(cfg: SourceConfig, tree: SourceTree) -> Iterator[Item]:
    acl_rules, problem = _acl_rules(tree)
    if problem:
        yield problem
    for name, unsafe in tree.names():
        base = name.rsplit("/", 1)[-1]
        if unsafe:
            yield Skipped(name, unsafe)
            continue
        if base.startswith((".", "_")):
            continue  # hidden files and the ACL file are not documents
        lower = base.lower()
        try:
            if lower.endswith(TEXT_SUFFIXES):
                title, body = _text(_decode(tree.read(name), cfg.encoding), base)
            elif lower.endswith(HTML_SUFFIXES):
                title, body = _html(_decode(tree.read(name), cfg.encoding), base)
            elif lower.endswith(".pdf"):
                title, body = _pdf(tree.read(name), base)
            else:
                yield Skipped(name, "not a supported document type (.md .txt .html .pdf)")
                continue
        except ValueError as exc:
            yield Skipped(name, str(exc))
            continue
        if not body.strip():
            yield Skipped(name, "no text in it (a scanned PDF needs OCR first)")
            continue
        acl = acl_rules.get("files", {}).get(name, acl_rules.get("default", cfg.acl or []))
        yield SourceRecord(
            cfg.tenant,
            cfg.name,
            name,
            "document",
            title,
            body.strip(),
            {"path": name, "format": lower.rsplit(".", 1)[-1]},
            parse_acl(acl),
        )


def _acl_rules(tree: SourceTree) -> tuple[dict[str, Any], Skipped | None]:
    if not tree.exists(ACL_FILE):
        return {}, None
    try:
        rules = json.loads(tree.read(ACL_FILE).decode("utf-8"))
        # 'files' not an object was an AttributeError when each file's rule was looked up
        if not isinstance(rules, dict) or not isinstance(rules.get("files", {}), dict):
            raise ValueError("expected an object with 'default' and 'files' (an object)")
        return rules, None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # Unreadable rules must not widen access: every file falls back to deny.
        return {"default": []}, Skipped(ACL_FILE, f"unreadable ({exc}); every file denied")


def _decode(data: bytes, encoding: str) -> str:
    if b"\x00" in data[:4096]:
        raise ValueError("binary content in a text file")
    try:
        return data.decode(encoding).lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not valid {encoding} ({exc.reason}); set sources[].encoding") from exc
    except LookupError as exc:
        raise ValueError(f"unknown encoding '{encoding}' in sources[].encoding") from exc


def _text(content: str, base: str) -> tuple[str, str]:
    heading = _HEADING.search(content)
    return (heading.group(1) if heading else base.rsplit(".", 1)[0]), content


def _html(content: str, base: str) -> tuple[str, str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(content, "html.parser")
    for tag in soup(["script", "style", "nav", "header", "footer", "noscript", "template"]):
        tag.decompose()
    title_tag = soup.find("title") or soup.find("h1")
    title = title_tag.get_text(" ", strip=True) if title_tag else base.rsplit(".", 1)[0]
    lines: list[str] = []
    for tag in soup.find_all(["h1", "h2", "h3", "h4", "p", "li", "pre", "td"]):
        text = tag.get_text(" ", strip=True)
        if not text or tag.find_parent(["li", "pre", "td"]) is not None:
            continue
        level = tag.name[1] if tag.name.startswith("h") else ""
        prefix = "#" * int(level) + " " if level else ("- " if tag.name == "li" else "")
        lines.append(prefix + text)
    return title, "\n\n".join(lines)


def _pdf(data: bytes, base: str) -> tuple[str, str]:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise ValueError("an encrypted PDF; decrypt it first")
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = reader.metadata.title if reader.metadata else None
    except (PyPdfError, OSError, KeyError, TypeError) as exc:
        raise ValueError(f"corrupt or truncated PDF ({exc})") from exc
    body = "\n\n".join(p.strip() for p in pages if p.strip())
    first_line = next((ln.strip() for ln in body.splitlines() if ln.strip()), "")
    return str(meta_title or first_line or base.rsplit(".", 1)[0])[:200], body
