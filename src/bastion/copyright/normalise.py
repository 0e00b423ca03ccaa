"""Text normalisation shared by the registry and the matcher.

Both sides must agree exactly, so a copy that differs only in case, whitespace, punctuation,
quote style or Unicode form normalises to the same string: NFKC, casefold, apostrophes
inside words dropped ("don't" -> "dont"), every other run of non-word characters one space.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

_APOSTROPHE = re.compile(r"(?<=\w)['\u2019\u02bc](?=\w)")
_NON_WORD = re.compile(r"[\W_]+")


def normalise(text: str) -> str:
    """The normalised form of `text` (fast: used on whole registered files)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _NON_WORD.sub(" ", _APOSTROPHE.sub("", folded)).strip()


def normalise_with_map(text: str) -> tuple[str, list[int]]:
    """The normalised form of `text` and, for each of its characters, the index in `text`
    it came from, so a match can be reported in the answer's own offsets."""
    if text.isascii():
        folded, source = text.lower(), list(range(len(text)))
    else:
        parts, source = [], []
        for i, ch in enumerate(text):
            f = unicodedata.normalize("NFKC", ch).casefold()
            parts.append(f)
            source.extend([i] * len(f))
        folded = "".join(parts)
    dropped = {m.start() for m in _APOSTROPHE.finditer(folded)}
    if dropped:
        keep = [i for i in range(len(folded)) if i not in dropped]
        folded = "".join(folded[i] for i in keep)
        source = [source[i] for i in keep]
    out: list[str] = []
    out_source: list[int] = []
    pos = 0
    for m in _NON_WORD.finditer(folded):
        out.append(folded[pos : m.start()])
        out_source.extend(source[pos : m.start()])
        out.append(" ")
        out_source.append(source[m.start()])
        pos = m.end()
    out.append(folded[pos:])
    out_source.extend(source[pos:])
    normal = "".join(out)
    start = len(normal) - len(normal.lstrip())
    end = len(normal.rstrip())
    return normal[start:end], out_source[start:end]


def strip_comments(code: str, filename: str) -> str | None:
    """`code` with its comments removed, by the lexer for `filename`; None when no lexer
    knows the file type (then it is registered as plain text)."""
    from pygments.lexers import get_lexer_for_filename
    from pygments.token import Comment
    from pygments.util import ClassNotFound

    try:
        lexer = get_lexer_for_filename(Path(filename).name, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None
    return "".join(
        value if ttype not in Comment else " " for ttype, value in lexer.get_tokens(code)
    )


# Comment syntaxes common to the languages models write, for answers whose language is
# unknown; replaced by spaces of the same length so offsets stay those of the answer.
_GENERIC_COMMENT = re.compile(
    r"/\*.*?\*/"  # C, Java, JS, CSS block comments
    r"|(?<![:\w/])//[^\n]*"  # C-family line comments (not the // of a URL)
    r"|(?:(?<=\s)|^)#(?![!{\[])[^\n]*"  # Python, shell, Ruby, YAML line comments
    r"|<!--.*?-->",  # HTML and XML
    re.DOTALL | re.MULTILINE,
)


def blank_generic_comments(text: str) -> str:
    """`text` with anything that looks like a code comment blanked out (same length)."""
    return _GENERIC_COMMENT.sub(lambda m: " " * len(m.group()), text)


def looks_like_code(text: str) -> bool:
    """Whether an answer may hold code, so the comment-blind check is worth running."""
    return "```" in text or bool(
        re.search(r"[;{}]\s*$|^\s*(def|class|import|#include)\b", text, re.M)
    )
