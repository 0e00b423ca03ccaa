"""Regenerate the configuration reference inside README.md from the code (`make docs`)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from bastion.config import reference_markdown

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"(<!-- config-reference:start -->\n).*?(<!-- config-reference:end -->)", re.S)


def synced(text: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + reference_markdown() + m.group(2), text)


if __name__ == "__main__":
    current = README.read_text(encoding="utf-8")
    updated = synced(current)
    if "--check" in sys.argv:
        sys.exit(0 if updated == current else "README.md is out of date: run `make docs`")
    README.write_text(updated, encoding="utf-8")
