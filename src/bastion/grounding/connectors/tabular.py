"""Record-per-row sources: CSV, JSON Lines, a JSON array, and any SQL database."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from bastion.config import SourceConfig
from bastion.errors import ConfigError
from bastion.grounding.connectors.tree import check_size
from bastion.grounding.records import Skipped, SourceRecord, parse_acl

Item = SourceRecord | Skipped


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def _render(template: str, values: Mapping[str, Any], where: str) -> str:
    try:
        return template.format_map(_Blank({k: "" if v is None else v for k, v in values.items()}))
    except (ValueError, AttributeError, IndexError, KeyError, TypeError) as exc:
        # TypeError: "{total:.2f}" on a JSON object, "{name[0]}" on a number
        raise ConfigError(f"template {template!r} cannot be filled ({exc}) at {where}") from exc


def map_row(cfg: SourceConfig, row: Mapping[str, Any], where: str) -> Item:
    """One source row -> a canonical record (or why it was skipped)."""
    assert cfg.id_field and cfg.entity
    raw_id = row.get(cfg.id_field)
    if raw_id is None or str(raw_id).strip() == "":
        return Skipped(where, f"no value in the id field '{cfg.id_field}'")
    fields = {canon: row.get(src) for canon, src in cfg.fields.items()} if cfg.fields else dict(row)
    fields = {k: v for k, v in fields.items() if v is not None and str(v).strip() != ""}
    if _undecodable([*row.values(), *fields]):  # the values, and the column names kept
        return Skipped(where, f"text is not valid {cfg.encoding}; set sources[].encoding")
    title = _render(cfg.title, fields, where) if cfg.title else f"{cfg.entity} {raw_id}"
    body = (
        _render(cfg.text, fields, where)
        if cfg.text
        else "\n".join(f"{k.replace('_', ' ')}: {v}" for k, v in fields.items())
    )
    acl = set(cfg.acl or ())
    if cfg.acl_field:
        acl.update(parse_acl(row.get(cfg.acl_field)))
    if cfg.owner_field and row.get(cfg.owner_field):
        acl.add(f"user:{str(row[cfg.owner_field]).strip()}")
    return SourceRecord(
        cfg.tenant,
        cfg.name,
        str(raw_id).strip(),
        cfg.entity,
        title.strip(),
        body.strip(),
        fields,
        tuple(sorted(acl)),
    )


_SURROGATE = re.compile("[\ud800-\udfff]")


def _undecodable(value: Any) -> bool:
    # surrogateescape turns bytes the codec cannot read into lone surrogates, and a JSON
    # "\ud800" escape gives one: a record holding one (in a nested JSON value or a column
    # name too) cannot be stored or hashed as UTF-8. A loop, not recursion: JSON nests deep.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str) and _SURROGATE.search(item):
            return True
        if isinstance(item, dict):
            stack += [*item.keys(), *item.values()]
        elif isinstance(item, list):
            stack += item
    return False


def _json_problem(exc: ValueError | RecursionError) -> str:
    """Why json.loads failed: its own message, or the two limits it has no message for."""
    if isinstance(exc, json.JSONDecodeError):
        return exc.msg
    return "nested too deeply" if isinstance(exc, RecursionError) else "a number too long"


def _read_text(path: Path, cfg: SourceConfig) -> str:
    check_size(path.stat().st_size, cfg.max_file_mb * 1e6)
    try:
        return path.read_bytes().decode(cfg.encoding, errors="surrogateescape")
    except UnicodeDecodeError as exc:  # utf-16 cut short: surrogateescape cannot get past it
        message = f"sources[{cfg.name}]: {path.name} is not valid {cfg.encoding} ({exc.reason})"
        raise ConfigError(message + "; set sources[].encoding") from exc
    except LookupError as exc:
        message = f"sources[{cfg.name}].encoding: unknown encoding '{cfg.encoding}'"
        raise ConfigError(message) from exc


def read_csv(cfg: SourceConfig, path: Path) -> Iterator[Item]:
    content = _read_text(path, cfg).lstrip("\ufeff")
    reader = csv.DictReader(io.StringIO(content, newline=""))
    try:
        columns = reader.fieldnames or []
    except csv.Error as exc:  # was uncaught: a header cell over the csv module's size limit
        yield Skipped(f"{path.name}:1", f"unreadable CSV header ({exc}); file skipped")
        return
    if cfg.id_field not in columns:
        yield Skipped(str(path), f"no '{cfg.id_field}' column; columns: {reader.fieldnames}")
        return
    try:
        for row in reader:
            where = f"{path.name}:{reader.line_num}"
            if None in row:  # more cells than the header has columns
                yield Skipped(where, "more cells than columns")
                continue
            yield map_row(cfg, row, where)
    except csv.Error as exc:
        yield Skipped(f"{path.name}:{reader.line_num}", f"unreadable CSV ({exc}); rest skipped")


def read_jsonl(cfg: SourceConfig, path: Path) -> Iterator[Item]:
    for n, line in enumerate(_read_text(path, cfg).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path.name}:{n}"
        try:
            row = json.loads(line)
        except (ValueError, RecursionError) as exc:  # was uncaught: deep nesting, long numbers
            yield Skipped(where, f"invalid JSON ({_json_problem(exc)}); truncated or corrupt line")
            continue
        yield map_row(cfg, row, where) if isinstance(row, dict) else Skipped(where, "not an object")


def read_json(cfg: SourceConfig, path: Path) -> Iterator[Item]:
    text = _read_text(path, cfg)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # was uncaught: deep nesting, long numbers
        at = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        yield Skipped(path.name, f"invalid JSON ({_json_problem(exc)}{at}); file skipped")
        return
    if isinstance(data, dict):  # {"records": [...]}: the one list inside
        lists = [v for v in data.values() if isinstance(v, list)]
        data = lists[0] if len(lists) == 1 else None
    if not isinstance(data, list):
        yield Skipped(path.name, "expected a JSON array of objects (or an object holding one)")
        return
    for n, row in enumerate(data):
        where = f"{path.name}[{n}]"
        yield map_row(cfg, row, where) if isinstance(row, dict) else Skipped(where, "not an object")


def read_sql(cfg: SourceConfig, home: Path) -> Iterator[Item]:
    assert cfg.url and cfg.query
    url = cfg.url.replace("{home}", str(home))
    try:
        engine = create_engine(url)
    except (SQLAlchemyError, ValueError) as exc:
        raise ConfigError(f"sources[{cfg.name}].url is not a usable database URL: {exc}") from exc
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True).execute(text(cfg.query))
            for n, row in enumerate(result.mappings(), start=1):
                yield map_row(cfg, dict(row), f"row {n}")
    except SQLAlchemyError as exc:
        raise ConfigError(f"sources[{cfg.name}]: the query failed: {exc}") from exc
    finally:
        engine.dispose()
