"""The protected-works registry: one SQLite file on disk, read by every server process.

A work is one registration (a book, a folder of documents, a code repository) with an owner
and an SPDX licence; its files are documents. For each document the registry keeps winnowed
fingerprints `(hash, doc, position)` and its normalised text in compressed chunks, so a
candidate match is verified against the real text. Files are read in blocks, so a large
work never has to fit in memory; a registration is one transaction, so a failure leaves
nothing half-registered.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import numpy as np

from bastion.copyright.fingerprint import (
    SHINGLE_WORDS,
    WINNOW_WINDOW,
    as_signed,
    shingle_hashes,
    tokens,
    winnow,
)
from bastion.copyright.normalise import normalise, strip_comments
from bastion.errors import BadRequest, BastionError, Conflict, NotFound

SCHEMA_VERSION = "1"
TEXT_CHUNK = 65_536  # normalised characters per stored chunk
READ_BLOCK = 4_194_304  # characters read from a file at a time
MAX_CODE_FILE = 5_000_000  # larger "code" files are registered as text, comments and all
PROSE_SUFFIXES = {".txt", ".md", ".markdown", ".rst", ".html", ".htm", ".text", ""}
_SPDX_REF = re.compile(r"^(?:DocumentRef-[\w.-]+:)?LicenseRef-[\w.-]+$")
_KEY = re.compile(r"^[\w][\w.:/@-]{0,199}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS works(
    work INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, title TEXT NOT NULL,
    owner TEXT NOT NULL, license TEXT NOT NULL, source TEXT, sha256 TEXT NOT NULL UNIQUE,
    chars INTEGER NOT NULL, added_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS docs(
    doc INTEGER PRIMARY KEY AUTOINCREMENT, work INTEGER NOT NULL, path TEXT NOT NULL,
    kind TEXT NOT NULL, chars INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS docs_work ON docs(work);
CREATE TABLE IF NOT EXISTS fp(
    h INTEGER NOT NULL, doc INTEGER NOT NULL, pos INTEGER NOT NULL,
    PRIMARY KEY(h, doc, pos)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS txt(
    doc INTEGER NOT NULL, chunk INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY(doc, chunk)) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class Work:
    id: int
    key: str
    title: str
    owner: str
    license: str
    source: str | None
    chars: int
    files: int
    added_at: str

    def to_dict(self) -> dict[str, object]:
        return {k: v for k, v in vars(self).items() if k != "id"}


@dataclass(frozen=True)
class Document:
    """A registered file, with the work it belongs to."""

    id: int
    path: str
    kind: str  # "text" or "code"
    work: Work


@dataclass
class Registration:
    """What one `add` did: the works registered and the files passed over, with why."""

    works: list[Work]
    skipped: list[tuple[str, str]]


def check_license(license_id: str) -> str:
    """The SPDX expression, normalised; a clear error for anything else."""
    from license_expression import get_spdx_licensing

    if _SPDX_REF.match(license_id):
        return license_id
    info = get_spdx_licensing().validate(license_id)
    if info.errors or not info.normalized_expression:
        raise BadRequest(
            f"'{license_id}' is not an SPDX licence: use an SPDX id or expression "
            "(MIT, CC-BY-4.0, GPL-3.0-or-later, 'MIT OR Apache-2.0') or "
            "LicenseRef-<name> for the owner's own terms (e.g. LicenseRef-AllRightsReserved)."
        )
    return str(info.normalized_expression)


def _is_binary(path: Path) -> bool:
    with path.open("rb") as f:
        return b"\0" in f.read(8192)


def _doc_kind(path: Path) -> str:
    from pygments.lexers import get_lexer_for_filename
    from pygments.util import ClassNotFound

    if path.suffix.lower() in PROSE_SUFFIXES:
        return "text"
    try:
        get_lexer_for_filename(path.name)
    except ClassNotFound:
        return "text"
    return "code"


def _commit(db: sqlite3.Connection) -> None:
    """Commit, then fold the write-ahead log into the file so readers do not search a log
    as large as the registration."""
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


class _DocWriter:
    """Streams one document's normalised text into the fingerprint and text tables."""

    def __init__(self, db: sqlite3.Connection, doc: int, digest: hashlib._Hash) -> None:
        self.db, self.doc, self.digest = db, doc, digest
        self.chars = 0  # normalised characters written so far
        self._pending = ""  # text not yet stored as a full chunk
        self._chunk = 0
        self._tail_words: list[str] = []  # last k-1 words, for shingles across blocks
        self._tail_starts = np.zeros(0, dtype=np.int64)

    def write(self, normal: str) -> None:
        """Append a block of normalised text to the document."""
        if not normal:
            return
        base = self.chars + (1 if self.chars else 0)  # blocks are joined by one space
        if self.chars:
            normal = " " + normal
        self.chars += len(normal)
        self.digest.update(normal.encode())
        self._store_text(normal)
        words, starts = tokens(normal.lstrip(" "))
        words = self._tail_words + words
        starts = np.concatenate([self._tail_starts, starts + base])
        hashes = shingle_hashes(words)
        picked = winnow(hashes)
        self.db.executemany(
            "INSERT INTO temp.staged VALUES (?, ?, ?)",
            zip(
                as_signed(hashes[picked]),
                [self.doc] * len(picked),
                starts[picked].tolist(),
                strict=True,
            ),
        )
        keep = SHINGLE_WORDS - 1
        self._tail_words, self._tail_starts = words[-keep:], starts[-keep:]

    def _store_text(self, normal: str) -> None:
        pending = self._pending + normal
        full = len(pending) - len(pending) % TEXT_CHUNK
        for at in range(0, full, TEXT_CHUNK):
            self._flush(pending[at : at + TEXT_CHUNK])
        self._pending = pending[full:]

    def _flush(self, piece: str) -> None:
        self.db.execute(
            "INSERT INTO txt VALUES (?, ?, ?)",
            (self.doc, self._chunk, zlib.compress(piece.encode(), 3)),
        )
        self._chunk += 1

    def close(self) -> None:
        if self._pending:
            self._flush(self._pending)
            self._pending = ""


def _read_blocks(path: Path, encoding: str) -> Iterator[str]:
    """The file's text in blocks cut at whitespace, so no word is split between two."""
    carry = ""
    with path.open(encoding=encoding, newline="") as f:
        while block := f.read(READ_BLOCK):
            block = carry + block
            cut = max(block.rfind(" "), block.rfind("\n"))
            if cut <= 0:
                carry = block
                continue
            carry = block[cut:]
            yield block[:cut]
    if carry:
        yield carry


class ProtectedRegistry:
    """The registry file. Writers take SQLite's write lock for a whole registration;
    readers (the guard, one connection per thread) see each registration all at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._chunk = lru_cache(maxsize=256)(self._read_chunk)

    # -- writing -------------------------------------------------------------------------

    def _writer(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, timeout=60)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA cache_size=-262144")  # 256 MB: a large work's inserts stay in memory
        db.executescript(_SCHEMA)
        # fingerprints wait here and join the index in key order when the work is complete:
        # one ordered pass over the index's pages instead of a random write per row
        db.execute("CREATE TEMP TABLE IF NOT EXISTS staged(h INTEGER, doc INTEGER, pos INTEGER)")
        stored = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if stored is None:
            db.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [
                    ("schema", SCHEMA_VERSION),
                    ("shingle_words", str(SHINGLE_WORDS)),
                    ("winnow_window", str(WINNOW_WINDOW)),
                ],
            )
        elif stored[0] != SCHEMA_VERSION:
            raise BadRequest(
                f"{self.path} was written by another Bastion version (schema {stored[0]}); "
                "register the works again into a new file."
            )
        return db

    def add_path(
        self,
        path: Path,
        *,
        owner: str,
        license_id: str,
        title: str | None = None,
        key: str | None = None,
        encoding: str = "utf-8",
        max_file_mb: float = 1024,
        progress: Callable[[int], None] | None = None,
        strict: bool = False,
    ) -> Registration:
        """Register a file, a folder (one work, its files the documents) or a JSONL file of
        works (`{"id", "title", "text"}` rows, optional `owner` and `license`). A JSONL row
        that cannot be registered (malformed, a duplicate id or text) is skipped and
        reported; with `strict` it undoes the whole file."""
        license_id = check_license(license_id)
        if not path.exists():
            raise BadRequest(f"{path} does not exist.")
        if path.is_file() and path.suffix.lower() == ".jsonl":
            return self._add_jsonl(path, owner, license_id, encoding, progress, strict)
        files, skipped = self._files(path, max_file_mb)
        if not files:
            reasons = "; ".join(f"{p}: {why}" for p, why in skipped) or "it holds no files"
            raise BadRequest(f"nothing to register in {path}: {reasons}.")
        key = key or path.resolve().name
        title = title or (path.stem if path.is_file() else path.name)
        work = self._register(
            key, title, owner, license_id, str(path.resolve()), files, path, encoding, progress
        )
        return Registration([work], skipped)

    def add_text(self, key: str, title: str, text: str, *, owner: str, license_id: str) -> Work:
        """Register one text given in memory (the JSONL rows; tests)."""
        license_id = check_license(license_id)
        return self._register_texts(key, title, owner, license_id, None, [("", "text", text)])

    def _files(self, path: Path, max_file_mb: float) -> tuple[list[Path], list[tuple[str, str]]]:
        candidates = (
            [path]
            if path.is_file()
            else sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        )
        files, skipped = [], []
        for p in candidates:
            size_mb = p.stat().st_size / 1e6
            if size_mb > max_file_mb:
                skipped.append(
                    (
                        str(p),
                        f"{size_mb:.0f} MB is over the {max_file_mb:g} MB limit "
                        "(raise it with --max-file-mb)",
                    )
                )
            elif _is_binary(p):
                skipped.append((str(p), "binary file (not text)"))
            else:
                files.append(p)
        return files, skipped

    def _register(
        self,
        key: str,
        title: str,
        owner: str,
        license_id: str,
        source: str,
        files: list[Path],
        root: Path,
        encoding: str,
        progress: Callable[[int], None] | None,
    ) -> Work:
        self._check_key(key)
        db = self._writer()
        try:
            db.execute("BEGIN IMMEDIATE")
            self._check_new(db, key)
            work = self._insert_work(db, key, title, owner, license_id, source)
            digest = hashlib.sha256()
            total = 0
            for file in files:
                relative = file.name if root.is_file() else str(file.relative_to(root))
                total += self._add_file(db, work, file, relative, encoding, digest)
                if progress:
                    progress(file.stat().st_size)
            return self._finish(db, work, digest, total)
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    def _register_texts(
        self,
        key: str,
        title: str,
        owner: str,
        license_id: str,
        source: str | None,
        docs: list[tuple[str, str, str]],
        db: sqlite3.Connection | None = None,
    ) -> Work:
        self._check_key(key)
        own = db is None
        db = db or self._writer()
        try:
            if own:
                db.execute("BEGIN IMMEDIATE")
            self._check_new(db, key)
            work = self._insert_work(db, key, title, owner, license_id, source)
            digest = hashlib.sha256()
            total = 0
            for path, kind, text in docs:
                writer = self._new_doc(db, work, path, kind, digest)
                writer.write(normalise(text))
                total += self._close_doc(db, writer)
            result = self._finish(db, work, digest, total, commit=own)
            return result
        except BaseException:
            if own and db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            if own:
                db.close()

    def _add_jsonl(
        self,
        path: Path,
        owner: str,
        license_id: str,
        encoding: str,
        progress: Callable[[int], None] | None,
        strict: bool,
    ) -> Registration:
        db = self._writer()
        works: list[Work] = []
        skipped: list[tuple[str, str]] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            with path.open(encoding=encoding) as f:
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    # Each row is all or nothing: a bad one is rolled back alone and
                    # reported, unless `strict`, when it undoes the whole file.
                    db.execute("SAVEPOINT work_row")
                    try:
                        row = self._jsonl_row(path, n, line)
                        works.append(
                            self._register_texts(
                                str(row["id"]),
                                str(row.get("title") or row["id"]),
                                str(row.get("owner") or owner),
                                check_license(str(row.get("license") or license_id)),
                                f"{path.resolve()}#{n}",
                                [("", "text", str(row["text"]))],
                                db,
                            )
                        )
                    except BastionError as exc:
                        if strict:
                            raise
                        db.execute("ROLLBACK TO work_row")
                        db.execute("DELETE FROM temp.staged")
                        skipped.append((f"{path.name} line {n}", exc.message))
                    db.execute("RELEASE work_row")
                    if progress:
                        progress(len(line.encode()))
            _commit(db)
        except UnicodeDecodeError as exc:
            raise BadRequest(
                f"{path} is not {encoding} text ({exc.reason} at byte {exc.start}): "
                "pass --encoding (for example latin-1 or cp1252)."
            ) from exc
        finally:
            if db.in_transaction:
                db.execute("ROLLBACK")
            db.close()
        if not works:
            first = (
                f" {len(skipped)} rows were skipped, the first: {skipped[0][1]}" if skipped else ""
            )
            raise BadRequest(
                f"{path} holds no works to register (one JSON object per line).{first}"
            )
        return Registration(works, skipped)

    @staticmethod
    def _jsonl_row(path: Path, n: int, line: str) -> dict[str, object]:
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadRequest(f"{path} line {n} is not JSON ({exc.msg}).") from None
        if not isinstance(row, dict) or not row.get("id") or not isinstance(row.get("text"), str):
            raise BadRequest(
                f"{path} line {n} needs an 'id' and a 'text' string (and may have 'title', "
                "'owner', 'license')."
            )
        return row

    @staticmethod
    def _check_key(key: str) -> None:
        if not _KEY.match(key):
            raise BadRequest(
                f"'{key}' is not a usable work id: letters, digits and . : / @ - _ "
                "(at most 200 characters)."
            )

    @staticmethod
    def _check_new(db: sqlite3.Connection, key: str) -> None:
        if db.execute("SELECT 1 FROM works WHERE key = ?", (key,)).fetchone():
            raise Conflict(
                f"a work with id '{key}' is already registered: remove it first "
                f"(`bastion protect remove {key}`) or give another --id."
            )

    @staticmethod
    def _insert_work(
        db: sqlite3.Connection,
        key: str,
        title: str,
        owner: str,
        license_id: str,
        source: str | None,
    ) -> int:
        added = datetime.now(UTC).isoformat(timespec="seconds")
        cur = db.execute(
            "INSERT INTO works(key, title, owner, license, source, sha256, chars, added_at) "
            "VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
            (key, title, owner, license_id, source, f"pending:{key}", added),
        )
        return int(cur.lastrowid or 0)

    def _add_file(
        self,
        db: sqlite3.Connection,
        work: int,
        file: Path,
        relative: str,
        encoding: str,
        digest: hashlib._Hash,
    ) -> int:
        kind = _doc_kind(file)
        try:
            if kind == "code" and file.stat().st_size <= MAX_CODE_FILE:
                code = file.read_text(encoding=encoding)
                stripped = strip_comments(code, file.name)
                blocks: Iterator[str] | list[str] = [stripped if stripped is not None else code]
            else:
                kind = "text"
                blocks = _read_blocks(file, encoding)
            writer = self._new_doc(db, work, relative, kind, digest)
            for block in blocks:
                writer.write(normalise(block))
        except UnicodeDecodeError as exc:
            raise BadRequest(
                f"{file} is not {encoding} text ({exc.reason} at byte {exc.start}): pass "
                "--encoding (for example latin-1 or cp1252); nothing registered."
            ) from exc
        except LookupError as exc:
            raise BadRequest(f"unknown encoding '{encoding}': {exc}") from exc
        return self._close_doc(db, writer)

    @staticmethod
    def _new_doc(
        db: sqlite3.Connection, work: int, path: str, kind: str, digest: hashlib._Hash
    ) -> _DocWriter:
        cur = db.execute(
            "INSERT INTO docs(work, path, kind, chars) VALUES (?, ?, ?, 0)", (work, path, kind)
        )
        digest.update(f"\0{path}\0".encode())
        return _DocWriter(db, int(cur.lastrowid or 0), digest)

    @staticmethod
    def _close_doc(db: sqlite3.Connection, writer: _DocWriter) -> int:
        writer.close()
        db.execute("UPDATE docs SET chars = ? WHERE doc = ?", (writer.chars, writer.doc))
        return writer.chars

    def _finish(
        self,
        db: sqlite3.Connection,
        work: int,
        digest: hashlib._Hash,
        chars: int,
        *,
        commit: bool = True,
    ) -> Work:
        if chars == 0:
            raise BadRequest("the work has no text once normalised (no letters or digits).")
        sha = digest.hexdigest()
        same = db.execute("SELECT key FROM works WHERE sha256 = ?", (sha,)).fetchone()
        if same:
            raise Conflict(f"the same text is already registered as work '{same[0]}'.")
        db.execute("UPDATE works SET sha256 = ?, chars = ? WHERE work = ?", (sha, chars, work))
        db.execute("INSERT OR IGNORE INTO fp SELECT h, doc, pos FROM temp.staged ORDER BY h")
        db.execute("DELETE FROM temp.staged")
        if commit:
            _commit(db)
        found = self._work_rows(db, "WHERE w.work = ?", (work,))
        return found[0]

    def remove(self, key: str) -> Work:
        """Delete a work, its fingerprints and its text."""
        db = self._writer()
        try:
            db.execute("BEGIN IMMEDIATE")
            found = self._work_rows(db, "WHERE w.key = ?", (key,))
            if not found:
                raise NotFound(f"no registered work has id '{key}' (see `bastion protect list`).")
            docs = [d for (d,) in db.execute("SELECT doc FROM docs WHERE work = ?", (found[0].id,))]
            for doc in docs:
                self._delete_fingerprints(db, doc)
                db.execute("DELETE FROM txt WHERE doc = ?", (doc,))
            db.execute("DELETE FROM docs WHERE work = ?", (found[0].id,))
            db.execute("DELETE FROM works WHERE work = ?", (found[0].id,))
            _commit(db)
            return found[0]
        finally:
            if db.in_transaction:
                db.execute("ROLLBACK")
            db.close()

    def _delete_fingerprints(self, db: sqlite3.Connection, doc: int) -> None:
        """Delete by primary key: every shingle of the stored text is a superset of the
        fingerprints kept, so no scan of the whole table is needed."""
        chars = db.execute("SELECT chars FROM docs WHERE doc = ?", (doc,)).fetchone()[0]
        step = 1_000_000
        for start in range(0, chars, step):
            # overlap by a few words so shingles across the cut are covered
            text = self.text(doc, max(0, start - 400), min(chars, start + step), db)
            offset = max(0, start - 400)
            cut = text.find(" ") + 1 if offset else 0
            words, starts = tokens(text[cut:])
            hashes = shingle_hashes(words)
            db.executemany(
                "DELETE FROM fp WHERE h = ? AND doc = ? AND pos = ?",
                zip(
                    as_signed(hashes),
                    [doc] * len(hashes),
                    (starts[: len(hashes)] + offset + cut).tolist(),
                    strict=True,
                ),
            )

    # -- reading -------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection | None:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            if not self.path.exists():
                return None
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=True)
            self._local.db = db
        return db

    def works(self) -> list[Work]:
        db = self._reader()
        return self._work_rows(db, "", ()) if db is not None else []

    @staticmethod
    def _work_rows(db: sqlite3.Connection, where: str, args: tuple[object, ...]) -> list[Work]:
        rows = db.execute(
            "SELECT w.work, w.key, w.title, w.owner, w.license, w.source, w.chars, "
            "(SELECT count(*) FROM docs d WHERE d.work = w.work), w.added_at "
            f"FROM works w {where} ORDER BY w.key",
            args,
        ).fetchall()
        return [Work(*row) for row in rows]

    def lookup(self, hashes: list[int]) -> list[tuple[int, int, int]]:
        """The `(hash, doc, position)` fingerprints among `hashes`."""
        db = self._reader()
        if db is None or not hashes:
            return []
        unique = list(set(hashes))
        found: list[tuple[int, int, int]] = []
        for i in range(0, len(unique), 900):
            part = unique[i : i + 900]
            marks = ",".join("?" * len(part))
            found += db.execute(f"SELECT h, doc, pos FROM fp WHERE h IN ({marks})", part).fetchall()
        return found

    def document(self, doc: int) -> Document:
        db = self._reader()
        assert db is not None
        row = db.execute("SELECT work, path, kind FROM docs WHERE doc = ?", (doc,)).fetchone()
        work = self._work_rows(db, "WHERE w.work = ?", (row[0],))[0]
        return Document(doc, row[1], row[2], work)

    def text(self, doc: int, start: int, end: int, db: sqlite3.Connection | None = None) -> str:
        """Normalised text of a document between two offsets."""
        start = max(0, start)
        if end <= start:
            return ""
        first, last = start // TEXT_CHUNK, (end - 1) // TEXT_CHUNK
        if db is not None:  # inside a write transaction: read through it, uncached
            pieces = [self._read_chunk(doc, c, db) for c in range(first, last + 1)]
        else:
            pieces = [self._chunk(doc, c) for c in range(first, last + 1)]
        base = first * TEXT_CHUNK
        return "".join(pieces)[start - base : end - base]

    def _read_chunk(self, doc: int, chunk: int, db: sqlite3.Connection | None = None) -> str:
        db = db or self._reader()
        assert db is not None
        row = db.execute(
            "SELECT data FROM txt WHERE doc = ? AND chunk = ?", (doc, chunk)
        ).fetchone()
        return zlib.decompress(row[0]).decode() if row else ""

    def size_bytes(self) -> int:
        return sum(
            os.path.getsize(p) for p in (self.path, Path(f"{self.path}-wal")) if os.path.exists(p)
        )
