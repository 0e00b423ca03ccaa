"""Regenerate what the docs show from the code (`make docs`): the configuration reference
inside README.md, and the example plug-ins' source inside docs/extending.md."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from bastion.config import reference_markdown

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
EXTENDING = ROOT / "docs" / "extending.md"
REFERENCE = re.compile(
    r"(<!-- config-reference:start -->\n).*?(<!-- config-reference:end -->)", re.S
)
INCLUDE = re.compile(r"(<!-- include: (\S+) -->\n).*?(<!-- /include -->)", re.S)
FENCE = {".py": "python", ".toml": "toml"}


def synced_readme(text: str) -> str:
    return REFERENCE.sub(lambda m: m.group(1) + reference_markdown() + m.group(2), text)


def synced_extending(text: str) -> str:
    def include(m: re.Match[str]) -> str:
        path = ROOT / m.group(2)
        code = path.read_text(encoding="utf-8")
        return f"{m.group(1)}```{FENCE.get(path.suffix, '')}\n{code}```\n{m.group(3)}"

    return INCLUDE.sub(include, text)


SYNCED = {README: synced_readme, EXTENDING: synced_extending}


if __name__ == "__main__":
    stale = []
    for path, sync in SYNCED.items():
        current = path.read_text(encoding="utf-8")
        updated = sync(current)
        if updated != current:
            stale.append(path.relative_to(ROOT))
            if "--check" not in sys.argv:
                path.write_text(updated, encoding="utf-8")
    if stale and "--check" in sys.argv:
        sys.exit(f"out of date: {', '.join(map(str, stale))}; run `make docs`")
