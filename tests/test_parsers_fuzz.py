"""Property-based tests (hypothesis) of the parsers that take outside input: bastion.yaml
and BASTION_* overrides, the grounding connectors' files, Slack exports as the slack-digest
reads them, and segment specifications. On any input each gives a result or an error that
says what is wrong (a BastionError; a pydantic ValidationError for a model) and never
another exception. The @example inputs are bugs these tests found, kept covered.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import tempfile
import zipfile
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bastion.access import Principal
from bastion.apps.segment import parse_spec
from bastion.apps.segment.query import SegmentQuery, SegmentSources
from bastion.apps.segment.spec import (
    Catalogue,
    RequestTerms,
    SegmentSpec,
    decoding_schema,
    explain,
    normalized,
)
from bastion.apps.slack_digest.finding import find_items
from bastion.apps.slack_digest.reading import ExportedSlack, Window, check_channel
from bastion.config import BastionConfig, SourceConfig, load_config, reference_rows
from bastion.errors import BadRequest, BastionError, ConfigError
from bastion.grounding.connectors import read_source
from bastion.grounding.records import Skipped, SourceRecord
from bastion.storage import Database

#: Raise it (BASTION_PARSER_FUZZ_SCALE=20) for a longer search than the test run's.
SCALE = float(os.environ.get("BASTION_PARSER_FUZZ_SCALE", "1"))


def fuzz(examples: int) -> settings:
    """`examples` per property (times SCALE): the whole file runs in well under a minute."""
    return settings(
        max_examples=max(1, round(examples * SCALE)),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("parsers-fuzz")


Scratch = Callable[[], tempfile.TemporaryDirectory[str]]


@pytest.fixture(scope="module")
def scratch(workdir: Path) -> Scratch:
    """A fresh folder per example (hypothesis runs many examples in one test call)."""
    return lambda: tempfile.TemporaryDirectory(dir=workdir)


SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


def _truncated(data: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """The data, or its first n bytes (a file cut off while copying)."""
    return st.tuples(data, st.integers(0, 400), st.booleans()).map(
        lambda t: t[0][: t[1]] if t[2] else t[0]
    )


# -- 1. configuration ----------------------------------------------------------------------

#: Every key name the configuration knows (sections, fields, part settings).
CONFIG_KEYS = sorted(
    {
        part.removesuffix("[]")
        for key, *_ in reference_rows()
        for part in key.split(".")
        if part != "<name>"
    }
)
CONFIG_WORDS = st.sampled_from(
    ["llamacpp", "echo", "openai", "csv", "slack", "sql", "documents", "acme", "chat", "*", "x"]
)
CONFIG_SCALARS = SCALARS | CONFIG_WORDS
CONFIG_FIELDS = st.dictionaries(
    st.sampled_from(CONFIG_KEYS) | st.text(max_size=4),
    CONFIG_SCALARS
    | st.lists(CONFIG_SCALARS, max_size=3)
    | st.dictionaries(st.sampled_from(CONFIG_KEYS), CONFIG_SCALARS, max_size=3),
    max_size=5,
)
CONFIG_DOCS = st.dictionaries(
    st.sampled_from(CONFIG_KEYS) | st.text(max_size=4),
    CONFIG_FIELDS | st.lists(CONFIG_FIELDS, max_size=3) | JSON_VALUES,
    max_size=4,
)
YAML_DOCUMENTS = st.one_of(
    CONFIG_DOCS.map(yaml.safe_dump).map(str.encode),
    JSON_VALUES.map(yaml.safe_dump).map(str.encode),
    _truncated(CONFIG_DOCS.map(yaml.safe_dump).map(str.encode)),
    st.text(alphabet=":-[]{}&*!|>'\"%@#,? \n\tabxyz019", max_size=80).map(str.encode),
    st.binary(max_size=64),
)
ENV_KEYS = st.lists(
    st.sampled_from(CONFIG_KEYS) | st.text(alphabet="abxyz_", max_size=4), min_size=1, max_size=3
).map(lambda parts: "BASTION_" + "__".join(p.upper() for p in parts))
ENV_VALUES = st.text(max_size=20) | CONFIG_SCALARS.map(str) | JSON_VALUES.map(json.dumps)


@fuzz(150)
@given(document=YAML_DOCUMENTS, environ=st.dictionaries(ENV_KEYS, ENV_VALUES, max_size=3))
@example(document=b"[" * 5000, environ={})  # RecursionError
@example(document=b"", environ={"BASTION_SERVER__PORT": "[" * 5000})  # RecursionError
@example(  # TypeError: server.port is a value and a section at once
    document=b"", environ={"BASTION_SERVER__PORT": "1", "BASTION_SERVER__PORT__MAX": "2"}
)
def test_configuration_loads_or_says_what_is_wrong(
    workdir: Path, document: bytes, environ: dict[str, str]
) -> None:
    path = workdir / "bastion.yaml"
    path.write_bytes(document)
    try:
        config = load_config(path, environ=environ)
    except ConfigError as exc:
        assert exc.message.strip()
    else:
        assert isinstance(config, BastionConfig)


# -- 2. connectors -------------------------------------------------------------------------


def _source(**kw: Any) -> SourceConfig:
    return SourceConfig.model_validate({"tenant": "acme", "name": "fuzz", **kw})


def _read(cfg: SourceConfig, home: Path) -> list[SourceRecord | Skipped]:
    """The source's items; a source that cannot be read must say why, as a BastionError.
    Every record must be one ingest can store (its hash is of its UTF-8 text)."""
    try:
        items = list(read_source(cfg, home))
    except BastionError as exc:
        assert exc.message.strip()
        return []
    for item in items:
        if isinstance(item, Skipped):
            assert item.reason.strip()
        else:
            assert isinstance(item, SourceRecord) and item.source_id
            assert item.content_hash
    return items


ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16"])
CELLS = st.text(alphabet='ab1 ,"\n\r\t;\ufeff\x00é€', max_size=8)
CSV_TEXT = st.tuples(
    st.sampled_from(["", "id,name,groups,owner,total\n", '"id","name"\r\n', "\ufeffid;name\n"]),
    st.lists(st.lists(CELLS, max_size=5).map(",".join), max_size=6).map("\n".join),
).map("".join)
CSV_FILES = _truncated(
    st.tuples(CSV_TEXT, ENCODINGS).map(lambda t: t[0].encode(t[1], errors="replace"))
) | st.binary(max_size=80)
TEMPLATES = st.sampled_from([None, "{name}", "{name} ({id})", "{total:.2f}", "{name[0]}"])


def _file_source(kind: str, **kw: Any) -> SourceConfig:
    return _source(kind=kind, path="data", entity="account", id_field="id", **kw)


@fuzz(120)
@given(
    content=CSV_FILES,
    encoding=ENCODINGS,
    title=TEMPLATES,
    mapped=st.booleans(),
)
@example(  # csv.Error: a header cell over the csv module's field limit
    content=b'id,"' + b"x" * 140_000, encoding="utf-8", title=None, mapped=False
)
@example(  # UnicodeEncodeError on ingest: a header the codec could not read
    content=b"id,caf\xe9\n1,x\n", encoding="utf-8", title=None, mapped=False
)
def test_csv_rows_are_records_or_skipped(
    workdir: Path, content: bytes, encoding: str, title: str | None, mapped: bool
) -> None:
    (workdir / "data").write_bytes(content)
    fields = {"name": "name", "total": "total"} if mapped else {}
    cfg = _file_source(
        "csv",
        encoding=encoding,
        title=title,
        fields=fields,
        acl_field="groups",
        owner_field="owner",
    )
    _read(cfg, workdir)


ROWS = st.dictionaries(
    st.sampled_from(["id", "name", "groups", "owner", "total"]) | st.text(max_size=4),
    JSON_VALUES | st.sampled_from(["\ud800", "a\udcffb", "x,y;z"]),
    max_size=5,
)
JSON_TEXT = st.one_of(
    st.lists(ROWS, max_size=4).map(json.dumps),
    st.lists(ROWS, max_size=4).map(lambda rows: json.dumps({"records": rows})),
    st.lists(ROWS | JSON_VALUES, max_size=4).map(lambda rows: "\n".join(map(json.dumps, rows))),
    JSON_VALUES.map(json.dumps),
)
JSON_FILES = _truncated(JSON_TEXT.map(str.encode)) | st.binary(max_size=80)


@fuzz(150)
@given(
    kind=st.sampled_from(["json", "jsonl"]),
    content=JSON_FILES,
    encoding=ENCODINGS,
    title=TEMPLATES,
)
@example(kind="json", content=b"[" * 100_000, encoding="utf-8", title=None)  # RecursionError
@example(kind="jsonl", content=b"[" * 100_000, encoding="utf-8", title=None)  # RecursionError
@example(  # ConfigError for the whole file: one line's number is over int()'s digit limit
    kind="jsonl", content=b'{"id": 1}\n{"id": ' + b"1" * 5000 + b"}", encoding="utf-8", title=None
)
@example(  # TypeError: a format spec on a JSON object
    kind="json", content=b'[{"id": 1, "total": {}}]', encoding="utf-8", title="{total:.2f}"
)
@example(  # TypeError: indexing a number
    kind="json", content=b'[{"id": 1, "name": 5}]', encoding="utf-8", title="{name[0]}"
)
@example(  # UnicodeEncodeError on ingest: a lone surrogate from a JSON escape
    kind="json", content=b'[{"id": 1, "name": {"a": "\\ud800"}}]', encoding="utf-8", title=None
)
def test_json_rows_are_records_or_skipped(
    workdir: Path, kind: str, content: bytes, encoding: str, title: str | None
) -> None:
    (workdir / "data").write_bytes(content)
    _read(_file_source(kind, encoding=encoding, title=title, acl_field="groups"), workdir)


@fuzz(25)
@given(
    database=st.none() | st.binary(max_size=200),
    query=st.sampled_from(["SELECT * FROM t", "SELECT * FROM u", "SELECT * FROM t WHERE id = :id"])
    | st.text(alphabet="SELECT *FROMtidname,;:'\"()-=1 ", min_size=1, max_size=40),
)
def test_sql_rows_are_records_or_an_error(
    scratch: Scratch, database: bytes | None, query: str
) -> None:
    with scratch() as folder:
        home = Path(folder)
        if database is None:
            with sqlite3.connect(home / "db.sqlite") as conn:
                conn.execute("CREATE TABLE t (id, name)")
                conn.executemany(
                    "INSERT INTO t VALUES (?, ?)", [(1, "a"), (None, "b"), (b"\xff", 2)]
                )
                conn.execute("CREATE TABLE u AS SELECT 1 AS id, CAST(x'ff41' AS TEXT) AS name")
            conn.close()
        else:
            (home / "db.sqlite").write_bytes(database)
        cfg = _source(
            kind="sql", url="sqlite:///{home}/db.sqlite", query=query, entity="order", id_field="id"
        )
        _read(cfg, home)


PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]/Contents 4 0 R"
    b"/Resources<</Font<</F1 5 0 R>>>>>>endobj\n"
    b"4 0 obj<</Length 41>>stream\nBT /F1 12 Tf 20 100 Td (Hello PDF) Tj ET\nendstream endobj\n"
    b"5 0 obj<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


def _mutated(data: bytes) -> st.SearchStrategy[bytes]:
    """`data` with a few bytes changed, or cut off."""
    edits = st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), max_size=3)

    def apply(changes: list[tuple[int, int]]) -> bytes:
        out = bytearray(data)
        for at, value in changes:
            out[at] = value
        return bytes(out)

    return _truncated(edits.map(apply))


MARKUP = st.text(alphabet="<>/!-[]&;#=\"' abhtmlpdivscript\n", max_size=80)
DOCUMENT_CONTENTS = st.one_of(
    st.binary(max_size=100),
    MARKUP.map(lambda s: s.encode("utf-8")),
    st.text(max_size=40).map(lambda s: ("# " + s).encode("utf-8")),
    _mutated(PDF),
)
ACL_FILES = st.fixed_dictionaries(
    {},
    optional={
        "default": JSON_VALUES,
        "files": JSON_VALUES | st.dictionaries(st.sampled_from(["a.md", "c.html"]), JSON_VALUES),
    },
).map(json.dumps).map(str.encode) | st.binary(max_size=20)


@st.composite
def document_folders(draw: st.DrawFn) -> dict[str, bytes]:
    names = ["a.md", "b.txt", "c.html", "d.pdf", "e.png", ".hidden.md", "sub/f.htm"]
    files = draw(st.dictionaries(st.sampled_from(names), DOCUMENT_CONTENTS, max_size=4))
    if draw(st.booleans()):
        files["_acl.json"] = draw(ACL_FILES)
    return files


def _zip(files: dict[str, bytes], *, deflated: bool = False, prefix: str = "") -> bytes:
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if deflated else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in files.items():
            archive.writestr(prefix + name, data)
    return buffer.getvalue()


def _damaged_zip(how: str) -> bytes:
    """A zip whose directory zipfile.ZipFile chokes on with other than BadZipFile."""
    files = {"channels.json": b'[{"name": "general"}]', "general/2026-01-05.json": b"[]"}
    if how == "undecodable name":  # UnicodeDecodeError: a UTF-8 flagged name that is not
        return _zip({**files, "é.json": b"[]"}).replace("é".encode(), b"\xff\xfe")
    archive = bytearray(_zip({**files, "Z": b"[]"}))
    directory = archive.rindex(b"PK\x01\x02")  # Z's entry
    if how == "version":  # NotImplementedError: zip file version 25.5
        archive[directory + 6] = 0xFF
    else:  # IndexError in ZipInfo.is_dir(): a name of length 0 (its byte read as extra)
        archive[directory + 28 : directory + 32] = b"\x00\x00\x01\x00"
    return bytes(archive)


@st.composite
def folder_or_zip(draw: st.DrawFn, files: st.SearchStrategy[dict[str, bytes]]) -> Any:
    """The files as a folder (a dict), or a zip's bytes: well-formed, with odd member names,
    compressed, corrupted in a few bytes, cut off, or not a zip at all."""
    content = draw(files)
    shape = draw(st.sampled_from(["folder", "zip", "odd names", "corrupt", "not a zip"]))
    if shape == "folder":
        return content
    if shape == "not a zip":
        return draw(st.binary(max_size=60))
    prefix = draw(st.sampled_from(["./", "x//", "x/./"])) if shape == "odd names" else ""
    archive = _zip(content, deflated=draw(st.booleans()), prefix=prefix)
    return draw(_mutated(archive)) if shape == "corrupt" else archive


def _write(root: Path, content: Any) -> Path:
    if isinstance(content, bytes):
        root.with_suffix(".zip").write_bytes(content)
        return root.with_suffix(".zip")
    root.mkdir()
    for name, data in content.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


@fuzz(60)
@given(export=folder_or_zip(document_folders()), encoding=ENCODINGS)
@example(export=_zip({"./a.md": b"# A"}), encoding="utf-8")  # KeyError: './a.md' read as 'a.md'
@example(export=_damaged_zip("undecodable name"), encoding="utf-8")
@example(export=_damaged_zip("empty name"), encoding="utf-8")
@example(export={"a.md": b"# A", "_acl.json": b'{"files": []}'}, encoding="utf-8")  # AttributeError
@example(export={"a.md": b"# A", "_acl.json": b"[" * 100_000}, encoding="utf-8")  # RecursionError
def test_documents_are_records_or_skipped(scratch: Scratch, export: Any, encoding: str) -> None:
    with scratch() as folder:
        path = _write(Path(folder) / "docs", export)
        _read(_source(kind="documents", path=str(path), encoding=encoding), Path(folder))


# -- 3. Slack exports ----------------------------------------------------------------------

USER_IDS = st.sampled_from(["U1", "U2", "U3"])
TIMESTAMPS = st.one_of(
    st.integers(0, 2 * 10**9).map(lambda n: f"{n}.000100"),
    st.sampled_from(["nan", "inf", "1e12", "-1e20", "abc", "", " 5 ", "1_0"]),
    JSON_VALUES,
)
TEXTS = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "<@U1> can you send it by Friday?",
            "I'll do it in 99999999 days",
            "Agreed. We decided to go with <https://x.test|the plan>",
            "due Feb 30, or tomorrow, EOD, next week, end of month",
            "<@U2|bob> will fix it",
            "a cut emoji \ud83d",
        ]
    ),
    JSON_VALUES,
)
SLACK_USERS = st.lists(
    st.fixed_dictionaries(
        {"id": USER_IDS | JSON_VALUES},
        optional={
            "name": st.sampled_from(["alice", "bob"]) | JSON_VALUES,
            "real_name": st.text(max_size=8) | JSON_VALUES,
            "profile": st.fixed_dictionaries({}, optional={"real_name": JSON_VALUES}) | JSON_VALUES,
            "is_bot": st.booleans(),
            "deleted": JSON_VALUES,
        },
    )
    | JSON_VALUES,
    max_size=3,
)
SLACK_CHANNELS = st.lists(
    st.fixed_dictionaries(
        {"name": st.sampled_from(["general", "exec", "../x", "a/b", ""]) | JSON_VALUES},
        optional={"members": st.lists(USER_IDS | JSON_VALUES, max_size=3) | JSON_VALUES},
    )
    | JSON_VALUES,
    max_size=3,
)
SLACK_MESSAGES = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "ts": TIMESTAMPS,
            "text": TEXTS,
            "user": USER_IDS | JSON_VALUES,
            "thread_ts": TIMESTAMPS,
            "subtype": st.sampled_from(["channel_join", "bot_message"]) | JSON_VALUES,
        },
    )
    | JSON_VALUES,
    max_size=5,
)


def _json_file(value: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return value.map(json.dumps).map(str.encode) | JSON_VALUES.map(json.dumps).map(str.encode)


@st.composite
def slack_files(draw: st.DrawFn) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for name, value in [
        ("users.json", SLACK_USERS),
        ("channels.json", SLACK_CHANNELS),
        ("groups.json", SLACK_CHANNELS),
    ]:
        if draw(st.integers(0, 4)):
            files[name] = draw(_json_file(value) | st.binary(max_size=20))
    days = st.sampled_from(["general/2026-01-05.json", "exec/2026-01-06.json", "x/y/z.json"])
    for day in draw(st.lists(days, max_size=3, unique=True)):
        files[day] = draw(_json_file(SLACK_MESSAGES) | st.binary(max_size=20))
    if draw(st.booleans()):
        files["general/notes.txt"] = draw(st.binary(max_size=20))
    return files


SLACK_EXPORTS = folder_or_zip(slack_files())
ALICE = Principal("acme", "alice", "admin", ("exec",))


def _day(*messages: str) -> dict[str, bytes]:
    """A channel with one day file of these messages."""
    return {
        "users.json": b'[{"id": "U1", "name": "alice"}]',
        "channels.json": b'[{"name": "general"}]',
        "general/2026-01-05.json": ("[" + ", ".join(messages) + "]").encode(),
    }


#: Exports that raised (or gave a bad record) before the fix in the connector.
SLACK_BUGS = [
    {"users.json": b"5"},  # TypeError: users.json not a list
    {"users.json": b"[" * 100_000},  # RecursionError
    {"users.json": b'[{"id": []}]'},  # TypeError: an unhashable user id
    {"users.json": b'[{"id": ""}]'},  # a contact with an empty id
    {"groups.json": b'[{"name": "exec", "members": 3}]'},  # TypeError: members not a list
    {  # AttributeError: a profile that is not an object (directory, and a message's author)
        **_day('{"ts": "1767600000.1", "text": "hi", "user": "U1"}'),
        "users.json": b'[{"id": "U1", "profile": 1}]',
    },
    _day('{"ts": "abc", "text": "x"}'),  # ValueError: a ts that is not a number
    _day('{"ts": "1e12", "text": "x"}'),  # ValueError: year 33658 is out of range
    _day('{"ts": "1", "text": [1]}'),  # TypeError: text that is not a string
    _day('{"ts": "1", "text": "x", "subtype": [1]}'),  # TypeError: unhashable subtype
    _day('{"ts": "1", "text": "x", "thread_ts": {}}'),  # TypeError: unhashable thread_ts
    _day('{"ts": "1", "text": "x", "user": [1]}'),  # TypeError: unhashable user
    _day('{"ts": "1", "text": "cut \\ud83d"}'),  # UnicodeEncodeError on ingest
    _damaged_zip("undecodable name"),  # UnicodeDecodeError opening the zip
    _damaged_zip("version"),  # NotImplementedError opening the zip
    _damaged_zip("empty name"),  # IndexError listing the zip
]


def slack_bugs(test: Any) -> Any:
    for export in SLACK_BUGS:
        test = example(export=export)(test)
    return test


@fuzz(100)
@given(export=SLACK_EXPORTS)
@slack_bugs
def test_slack_exports_are_records_or_skipped(scratch: Scratch, export: Any) -> None:
    with scratch() as folder:
        path = _write(Path(folder) / "slack", export)
        _read(_source(kind="slack", path=str(path)), Path(folder))


def _digest_reading(path: Path) -> None:
    """What the slack-digest does with an export before asking the model: each readable
    channel's threads, their messages' times, the window, and the items found by rule."""
    try:
        exported = ExportedSlack(path, ALICE, None)
    except BastionError as exc:
        assert exc.message.strip()
        return
    try:
        for channel in [*exported.readable_channels(), "general", "nowhere"]:
            try:
                check_channel(exported, channel)
            except BastionError as exc:
                assert exc.message.strip()
                continue
            threads = sorted(exported.threads(channel), key=lambda t: float(t.messages[0].ts))
            newest = max((m.at for t in threads for m in t.messages), default=None)
            until = newest + timedelta(microseconds=1) if newest else datetime.now(UTC)
            window = Window(until - timedelta(days=7), until)
            for thread in threads:
                assert thread.key
                if (cut := window.cut(thread)) is not None:
                    find_items(cut)
        assert all(s.reason.strip() for s in exported.skipped)
    finally:
        exported.close()


@fuzz(100)
@given(export=SLACK_EXPORTS)
@slack_bugs
@example(export=_day('{"ts": "1767600000.1", "text": "I\'ll do it in 99999999 days"}'))
def test_slack_exports_read_by_the_digest_give_threads_or_a_clear_error(
    scratch: Scratch, export: Any
) -> None:
    with scratch() as folder:
        _digest_reading(_write(Path(folder) / "slack", export))


def test_a_zip_of_dot_slash_names_reads_like_its_folder(workdir: Path) -> None:
    """Members named './channels.json', as some tools write them: the export was refused
    as not a Slack export, and a document such as './a.md' was a KeyError."""
    path = workdir / "dot-slash.zip"
    path.write_bytes(_zip(_day('{"ts": "1767600000.1", "text": "hi"}'), prefix="./"))
    items = _read(_source(kind="slack", path=str(path)), workdir)
    assert [i.source_id for i in items if isinstance(i, SourceRecord)] == [
        "U1",
        "general/2026-01-05",
    ]
    exported = ExportedSlack(path, ALICE, None)
    assert exported.readable_channels() == ["general"]
    exported.close()


def test_a_corrupt_member_of_a_slack_zip_is_skipped_not_a_crash(workdir: Path) -> None:
    """A zip whose central directory is intact but whose member data is corrupt: the
    member is reported as skipped (was: zipfile.BadZipFile, zlib.error)."""
    files = {
        "channels.json": b'[{"name": "general"}]',
        "general/2026-01-05.json": json.dumps([{"ts": "1767600000.1", "text": "hi"}]).encode(),
    }
    for deflated in (False, True):
        archive = bytearray(_zip(files, deflated=deflated))
        at = archive.index(b"general/2026-01-05.json") + len("general/2026-01-05.json") + 2
        archive[at] ^= 0xFF  # the day file's data (CRC or compressed stream)
        path = workdir / f"corrupt-{deflated}.zip"
        path.write_bytes(bytes(archive))
        items = _read(_source(kind="slack", path=str(path)), workdir)
        assert any(isinstance(i, Skipped) and "general/" in i.where for i in items)
        _digest_reading(path)


# -- 4. segment specifications -------------------------------------------------------------

TODAY = date(2026, 1, 5)
CATALOGUE = Catalogue(
    {
        ("account", "industry"): ("Food & Beverage", "Manufacturing"),
        ("account", "region"): ("US East",),
        ("account", "tier"): ("strategic",),
        ("orders", "product"): ("EdgeGateway G2", "PowerTap E1"),
        ("orders", "status"): ("fulfilled",),
        ("cases", "status"): ("open",),
        ("cases", "priority"): ("urgent",),
    }
)
WORDS = st.lists(
    st.text(max_size=10) | st.sampled_from(["x' OR 1=1 --", "100%", "a_b"]), max_size=3
)
NUMBERS = st.none() | st.integers(-5, 10**12) | st.floats() | st.sampled_from(["5", "x"])
DATES = st.none() | st.dates().map(date.isoformat) | st.sampled_from(["2026-02-30", "x", "2026"])
WINDOW = {"within_days": st.none() | st.integers(-1, 4000), "since": DATES, "until": DATES}
SPEC_SHAPED = st.fixed_dictionaries(
    {},
    optional={
        "account": st.fixed_dictionaries(
            {},
            optional={
                "industry": WORDS,
                "region": WORDS,
                "tier": WORDS,
                "min_revenue_usd": NUMBERS,
                "max_revenue_usd": NUMBERS,
            },
        ),
        "contact": st.fixed_dictionaries(
            {}, optional={"job_title": WORDS, "has_email": st.none() | st.booleans()}
        ),
        "orders": st.none()
        | st.fixed_dictionaries(
            {},
            optional={
                "has": st.booleans(),
                "product": WORDS,
                "status": WORDS,
                "min_total_usd": NUMBERS,
                **WINDOW,
            },
        ),
        "cases": st.none()
        | st.fixed_dictionaries(
            {},
            optional={
                "has": st.booleans(),
                "status": WORDS,
                "priority": WORDS,
                "about": WORDS,
                **WINDOW,
            },
        ),
        "extra": JSON_VALUES,
    },
)


@pytest.fixture(scope="module")
def segments(workdir: Path) -> SegmentQuery:
    db = Database(f"sqlite:///{workdir / 'segments.db'}")
    db.migrate()
    return SegmentQuery(db, SegmentSources(), "acme", ["*", "user:alice"])


def _check_spec(value: Any, segments: SegmentQuery) -> None:
    """The model's JSON as the app reads it, and the object as pydantic validates it: a
    specification, which explains itself and runs as SQL, or a clear refusal."""
    specs = []
    try:
        specs.append(SegmentSpec.model_validate(value))
    except ValidationError as exc:
        assert exc.errors()
    try:
        specs.append(parse_spec(json.dumps(value)))
    except BadRequest as exc:
        assert exc.message.strip()
    for spec in specs:
        assert explain(spec, TODAY)
        normalized(spec)
        assert segments.members(spec, TODAY) == []  # the SQL compiles and runs (no records)


@fuzz(150)
@given(value=JSON_VALUES | SPEC_SHAPED)
def test_a_segment_specification_is_valid_and_runs_or_is_refused(
    segments: SegmentQuery, value: Any
) -> None:
    _check_spec(value, segments)


@fuzz(60)
@given(request=st.text(max_size=120), value=SPEC_SHAPED)
@example(request="in " + "9" * 1000 + " days", value={})
def test_a_request_bounds_its_specification_or_refuses_it(request: str, value: Any) -> None:
    named = CATALOGUE.named_in(request)
    schema = decoding_schema(named, RequestTerms.of(request, named))
    try:
        spec = parse_spec(json.dumps(value), schema)
    except BadRequest as exc:
        assert exc.message.strip()
    else:
        assert isinstance(spec, SegmentSpec)
