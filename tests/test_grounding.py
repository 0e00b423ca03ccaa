"""Grounding: connectors, incremental ingest and index, hybrid search, and the ACL that
runs before ranking, on the real MiniLM embedder, LanceDB, bm25s and PostgreSQL/pgvector."""

from __future__ import annotations

import json
import sqlite3
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bastion.access import Principal
from bastion.config import GroundingConfig, SourceConfig
from bastion.errors import ConfigError
from bastion.evaluation.retrieval import evaluate_retrieval, read_qrels
from bastion.grounding.connectors import read_source
from bastion.grounding.connectors.slack import read_slack
from bastion.grounding.connectors.tree import SourceTree
from bastion.grounding.indexer import sync_index
from bastion.grounding.ingest import ingest_source, stored_records
from bastion.grounding.keyword import KeywordIndex
from bastion.grounding.records import Skipped, SourceRecord
from bastion.grounding.retriever import Retriever, fuse_rrf, fuse_zscore, readable_by
from bastion.grounding.stores import Chunk, VectorStore
from bastion.grounding.stores.lance import LanceStore
from bastion.grounding.stores.pgvector import PgVectorStore
from bastion.storage import Database


def _source(**kw: Any) -> SourceConfig:
    return SourceConfig.model_validate({"tenant": "acme", **kw})


def _items(cfg: SourceConfig, home: Path) -> tuple[list[SourceRecord], list[Skipped]]:
    items = list(read_source(cfg, home))
    return (
        [i for i in items if isinstance(i, SourceRecord)],
        [i for i in items if isinstance(i, Skipped)],
    )


# -- connectors ---------------------------------------------------------------------------


def test_csv_maps_fields_acl_and_owner_and_reports_bad_rows(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(
        b"id,name,region,groups,owner\n"
        b"A1,Initech,EMEA,sales;exec,carol\n"
        b",NoId,EMEA,,\n"
        b"A3,Caf\xe9,EMEA,,\n"  # latin-1 in a UTF-8 file
        b"A4,Extra,EMEA,,,surplus\n"
    )
    cfg = _source(
        name="crm",
        kind="csv",
        path="a.csv",
        entity="account",
        id_field="id",
        fields={"name": "name", "region": "region"},
        title="{name} ({region})",
        acl_field="groups",
        owner_field="owner",
    )
    records, skipped = _items(cfg, tmp_path)
    assert [r.source_id for r in records] == ["A1"]
    assert records[0].title == "Initech (EMEA)"
    assert records[0].acl == ("exec", "sales", "user:carol")
    assert records[0].text == "name: Initech\nregion: EMEA"
    reasons = " | ".join(s.reason for s in skipped)
    assert "no value in the id field 'id'" in reasons
    assert "not valid utf-8" in reasons and "sources[].encoding" in reasons
    assert "more cells than columns" in reasons
    latin = cfg.model_copy(update={"encoding": "latin-1"})
    assert "Café" in {r.title.split(" ")[0] for r in _items(latin, tmp_path)[0]}


def test_jsonl_and_json_report_corrupt_and_truncated_rows(tmp_path: Path) -> None:
    (tmp_path / "cases.jsonl").write_text(
        '{"case_id": "1", "subject": "Gateway offline"}\n'
        "not json\n"
        '["a list"]\n'
        '{"case_id": "2", "subject": "Sensor dr'  # truncated last line
    )
    cfg = _source(
        name="cases",
        kind="jsonl",
        path="cases.jsonl",
        entity="interaction",
        id_field="case_id",
        acl=["support"],
    )
    records, skipped = _items(cfg, tmp_path)
    assert [r.source_id for r in records] == ["1"] and records[0].acl == ("support",)
    assert len(skipped) == 3 and "truncated or corrupt" in skipped[0].reason
    (tmp_path / "list.json").write_text(json.dumps({"items": [{"id": 7, "x": "y"}, 5]}))
    cfg = _source(name="l", kind="json", path="list.json", entity="product", id_field="id")
    records, skipped = _items(cfg, tmp_path)
    assert records[0].source_id == "7" and records[0].acl == ()  # no ACL: denied to all
    assert skipped[0].reason == "not an object"


def test_a_source_that_cannot_be_read_is_an_error_not_an_empty_source(tmp_path: Path) -> None:
    cfg = _source(name="x", kind="csv", path="missing.csv", entity="account", id_field="id")
    with pytest.raises(ConfigError, match="does not exist"):
        list(read_source(cfg, tmp_path))
    (tmp_path / "big.jsonl").write_text('{"id": 1}\n' * 200_000)
    big = _source(
        name="b", kind="jsonl", path="big.jsonl", entity="order", id_field="id", max_file_mb=1
    )
    with pytest.raises(ConfigError, match="over the 1 MB limit"):
        list(read_source(big, tmp_path))
    with pytest.raises(ValueError, match="needs url, query"):
        _source(name="s", kind="sql", entity="order", id_field="id")


def test_sql_source_reads_any_sqlalchemy_url(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "erp.sqlite") as conn:
        conn.execute("CREATE TABLE orders (order_id TEXT, sku TEXT, total REAL)")
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?)", [("O1", "S-1", 9.5), ("O2", "S-2", 3)]
        )
    cfg = _source(
        name="orders",
        kind="sql",
        url="sqlite:///{home}/erp.sqlite",
        query="SELECT * FROM orders ORDER BY order_id",
        entity="order",
        id_field="order_id",
        text="Order {order_id}: {sku} for {total} USD",
        acl=["sales"],
    )
    records, _ = _items(cfg, tmp_path)
    assert [r.text for r in records] == ["Order O1: S-1 for 9.5 USD", "Order O2: S-2 for 3.0 USD"]
    broken = cfg.model_copy(update={"query": "SELECT * FROM nowhere"})
    with pytest.raises(ConfigError, match="the query failed"):
        list(read_source(broken, tmp_path))


def _slack_export(root: Path) -> None:
    users = [
        {
            "id": "U1",
            "name": "alice",
            "real_name": "Alice Admin",
            "profile": {"email": "alice@acme.test", "real_name": "Alice Admin"},
        },
        {"id": "U2", "name": "carol", "real_name": "Carol Sales", "profile": {}},
        {"id": "B1", "name": "bot", "is_bot": True, "profile": {}},
    ]
    (root / "general").mkdir(parents=True)
    (root / "exec").mkdir()
    (root / "users.json").write_text(json.dumps(users))
    (root / "channels.json").write_text(
        json.dumps([{"id": "C1", "name": "general", "members": ["U1", "U2"]}])
    )
    (root / "groups.json").write_text(json.dumps([{"id": "G1", "name": "exec", "members": ["U1"]}]))
    (root / "general" / "2026-01-05.json").write_text(
        json.dumps(
            [
                {
                    "type": "message",
                    "user": "U1",
                    "text": "Gateway 2.4 ships Friday",
                    "ts": "1767600000.000100",
                    "thread_ts": "1767600000.000100",
                    "reply_count": 1,
                },
                {
                    "type": "message",
                    "user": "U2",
                    "text": "<@U1> great, telling Initech",
                    "ts": "1767600060.000200",
                    "thread_ts": "1767600000.000100",
                },
                {
                    "type": "message",
                    "subtype": "channel_join",
                    "user": "U2",
                    "text": "joined",
                    "ts": "1767600001.0",
                },
                {"type": "message", "user": "U2", "text": "lunch?", "ts": "1767600100.000300"},
            ]
        )
    )
    (root / "exec" / "2026-01-05.json").write_text(
        json.dumps(
            [
                {
                    "type": "message",
                    "user": "U1",
                    "text": "Project Bluebird term sheet is signed",
                    "ts": "1767600200.000100",
                },
            ]
        )
    )
    (root / "exec" / "2026-01-06.json").write_text("[{broken")


def test_slack_export_threads_private_channels_and_members(tmp_path: Path) -> None:
    _slack_export(tmp_path / "slack")
    cfg = _source(name="slack", kind="slack", path="slack")
    records, skipped = _items(cfg, tmp_path)
    by_id = {r.source_id: r for r in records}
    thread = by_id["general/1767600000.000100"]
    assert thread.text == (
        "Alice Admin: Gateway 2.4 ships Friday\nCarol Sales: @Alice Admin great, telling Initech"
    )
    assert thread.acl == ("*",) and thread.entity == "message"
    # Each message is kept with its ts, thread and author, for programs that cite one.
    assert thread.fields["posts"] == [
        {
            "ts": "1767600000.000100",
            "thread_ts": "1767600000.000100",
            "user": "U1",
            "username": "alice",
            "name": "Alice Admin",
            "text": "Gateway 2.4 ships Friday",
            "mentions": [],
        },
        {
            "ts": "1767600060.000200",
            "thread_ts": "1767600000.000100",
            "user": "U2",
            "username": "carol",
            "name": "Carol Sales",
            "text": "@Alice Admin great, telling Initech",
            "mentions": [{"user": "U1", "name": "Alice Admin"}],
        },
    ]
    assert thread.fields["messages"] == 2
    assert by_id["general/2026-01-05"].text == "Carol Sales: lunch?"  # joins are noise
    assert by_id["general/2026-01-05"].fields["posts"][0]["thread_ts"] is None
    assert by_id["exec/2026-01-05"].acl == ("user:alice",)
    people = [r for r in records if r.entity == "contact"]
    assert [p.source_id for p in people] == ["U1", "U2"]  # the bot is not a person
    assert people[0].fields["email"] == "alice@acme.test"
    assert [s.where for s in skipped] == ["exec/2026-01-06.json"]
    # One channel alone (the digest reading an export): its messages, not the directory.
    items = list(read_slack(cfg, SourceTree(tmp_path / "slack", 10**6), only="exec"))
    assert [i.source_id for i in items if isinstance(i, SourceRecord)] == ["exec/2026-01-05"]
    assert [i.where for i in items if isinstance(i, Skipped)] == ["exec/2026-01-06.json"]


def test_zip_exports_refuse_members_outside_the_archive(tmp_path: Path) -> None:
    _slack_export(tmp_path / "slack")
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted((tmp_path / "slack").rglob("*.json")):
            z.write(f, f.relative_to(tmp_path / "slack").as_posix())
        z.writestr("../../etc/evil.json", "[]")
        z.writestr("/abs/evil.json", "[]")
    records, skipped = _items(_source(name="slack", kind="slack", path="export.zip"), tmp_path)
    assert any(r.source_id == "exec/2026-01-05" for r in records)
    unsafe = [s for s in skipped if "outside the export" in s.reason]
    assert {s.where for s in unsafe} == {"../../etc/evil.json", "/abs/evil.json"}
    (tmp_path / "not.zip").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ConfigError, match="not a folder or a zip"):
        list(read_source(_source(name="s", kind="slack", path="not.zip"), tmp_path))


def _documents(root: Path) -> None:
    from fpdf import FPDF

    root.mkdir(parents=True)
    (root / "pairing.md").write_text(
        "# Pairing sensors\n\nHold the pair button for 5 seconds until the LED blinks blue.\n\n"
        "## Troubleshooting\n\nMove the sensor within 10 metres of the gateway.\n"
    )
    (root / "firmware.html").write_text(
        "<html><head><title>Firmware updates</title><script>track()</script></head><body>"
        "<nav>Home | Docs</nav><h1>Firmware updates</h1><p>Gateways update nightly at 02:00 "
        "UTC.</p><ul><li>Keep power on</li></ul></body></html>"
    )
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.multi_cell(0, 8, "Warranty and RMA\nSensors carry a 36 month warranty.")
    pdf.output(str(root / "warranty.pdf"))
    (root / "pricing.md").write_text("# Discounts\n\nSales may discount up to 15 percent.\n")
    (root / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj <<")
    (root / "image.png").write_bytes(b"\x89PNG\r\n")
    (root / "binary.txt").write_bytes(b"\x00\x01\x02")
    (root / "_acl.json").write_text(
        json.dumps({"default": ["*"], "files": {"pricing.md": ["sales", "exec"]}})
    )


def test_documents_keep_structure_drop_navigation_and_follow_acl_file(tmp_path: Path) -> None:
    _documents(tmp_path / "kb")
    records, skipped = _items(_source(name="kb", kind="documents", path="kb"), tmp_path)
    by_id = {r.source_id: r for r in records}
    assert set(by_id) == {"pairing.md", "firmware.html", "warranty.pdf", "pricing.md"}
    html = by_id["firmware.html"]
    assert html.title == "Firmware updates" and "track()" not in html.text
    assert "Home | Docs" not in html.text and "# Firmware updates" in html.text
    assert "- Keep power on" in html.text
    assert "36 month warranty" in by_id["warranty.pdf"].text
    assert by_id["warranty.pdf"].title == "Warranty and RMA"
    assert by_id["pricing.md"].acl == ("exec", "sales") and by_id["pairing.md"].acl == ("*",)
    reasons = {s.where: s.reason for s in skipped}
    assert "corrupt or truncated PDF" in reasons["broken.pdf"]
    assert "not a supported document type" in reasons["image.png"]
    assert "binary content" in reasons["binary.txt"]


# -- ingest and index ---------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'g.db'}")
    database.migrate()
    return database


def test_reingest_is_incremental_and_removes_deleted_records(tmp_path: Path, db: Database) -> None:
    path = tmp_path / "a.csv"
    path.write_text("id,name\nA1,Initech\nA2,Globex\nA3,Umbrella\n")
    cfg = _source(
        name="crm", kind="csv", path="a.csv", entity="account", id_field="id", acl=["sales"]
    )
    first = ingest_source(db, cfg, tmp_path)
    assert (first.added, first.updated, first.unchanged, first.removed) == (3, 0, 0, 0)
    path.write_text("id,name\nA1,Initech\nA2,Globex Corp\nA2,Dupe\n")
    second = ingest_source(db, cfg, tmp_path)
    assert (second.added, second.updated, second.unchanged, second.removed) == (0, 1, 1, 1)
    assert second.skipped[0].reason.startswith("duplicate id")
    assert [r.title for r in stored_records(db, "acme")] == ["account A1", "account A2"]
    path.unlink()
    with pytest.raises(ConfigError):  # a vanished file is not 'everything was deleted'
        ingest_source(db, cfg, tmp_path)
    assert len(stored_records(db, "acme")) == 2


def test_index_embeds_only_changes_and_search_respects_acl(tmp_path: Path, db: Database) -> None:
    _documents(tmp_path / "kb")
    cfg = _source(name="kb", kind="documents", path="kb")
    ingest_source(db, cfg, tmp_path)
    store = LanceStore(tmp_path / "index")
    grounding = GroundingConfig()
    retriever = Retriever(store, grounding)
    first = sync_index(db, store, retriever.embedder, grounding, "acme")
    assert first.reindexed == 4 and first.chunks_written >= 4
    assert sync_index(db, store, retriever.embedder, grounding, "acme").chunks_written == 0

    hits = retriever.search("acme", "how long is the sensor warranty", ["*"], k=3)
    assert hits[0].chunk.source_id == "warranty.pdf"
    assert hits[0].dense_rank is not None and hits[0].keyword_rank is not None
    everyone = retriever.search("acme", "discount percent sales", ["*"], k=10)
    assert "pricing.md" not in {h.chunk.source_id for h in everyone}
    sales = retriever.search("acme", "discount percent sales", ["sales"], k=1)
    assert sales[0].chunk.source_id == "pricing.md"
    assert retriever.search("acme", "discount", [], k=5) == []  # no ACL entry, nothing
    assert retriever.search("other-tenant", "discount", ["*"], k=5) == []

    (tmp_path / "kb" / "pairing.md").write_text("# Pairing sensors\n\nPress twice to pair.\n")
    (tmp_path / "kb" / "warranty.pdf").unlink()
    ingest_source(db, cfg, tmp_path)
    again = sync_index(db, store, retriever.embedder, grounding, "acme")
    assert (again.reindexed, again.removed) == (1, 1)
    texts = {c.source_id: c.text for c in store.chunks("acme")}
    assert "warranty.pdf" not in texts and "Press twice" in texts["pairing.md"]
    assert not any("Hold the pair button" in c.text for c in store.chunks("acme"))
    assert retriever.search("acme", "pair button", ["*"], k=1, mode="bm25")[0].chunk.text.endswith(
        "Press twice to pair."
    )


def test_readable_by_grants_groups_the_user_and_everyone_but_not_the_role() -> None:
    admin = Principal("acme", "alice", "admin", ("exec",))
    assert readable_by(admin) == ["*", "exec", "user:alice"]


def test_fusion_rewards_agreement_and_keeps_clear_winners() -> None:
    a, b, c = (Chunk(x, "t", "s", x, "h", "document", x, x, ("*",)) for x in "abc")
    fused = fuse_rrf([[(a, 0.9), (b, 0.8), (c, 0.7)], [(b, 9.0), (c, 8.0)]], k=3, rrf_k=60)
    assert [h.chunk.id for h in fused] == ["b", "c", "a"]
    assert (fused[0].dense_rank, fused[0].keyword_rank) == (2, 1)
    assert (fused[2].dense_rank, fused[2].keyword_rank) == (1, None)
    # a is far ahead in dense and absent from BM25: z-scores keep its lead, ranks would not
    lists = [[(a, 0.95), (b, 0.30), (c, 0.29)], [(b, 5.0), (c, 4.9)]]
    assert [h.chunk.id for h in fuse_zscore(lists, 3, [0.5, 0.5])] == ["a", "b", "c"]
    assert [h.chunk.id for h in fuse_rrf(lists, 3, 60)] == ["b", "c", "a"]
    assert fuse_zscore([[], []], 3, [0.5, 0.5]) == []


# -- the ACL property: filtering happens before ranking, and nothing leaks ----------------

GROUPS = ["sales", "support", "marketing", "exec", "engineering", "user:alice", "user:bob", "*"]
WORDS = [
    "gateway",
    "sensor",
    "firmware",
    "pairing",
    "alert",
    "invoice",
    "discount",
    "warranty",
    "battery",
    "signal",
]


def _random_corpus(rng: np.random.Generator, n: int) -> tuple[list[Chunk], np.ndarray]:
    chunks = []
    for i in range(n):
        size = int(rng.integers(0, 3))  # some chunks have no ACL at all: denied to everyone
        acl = tuple(sorted(set(rng.choice(GROUPS, size=size).tolist())))
        words = " ".join(rng.choice(WORDS, size=6).tolist())
        chunks.append(Chunk(f"c{i}", "acme", "s", f"r{i}", "h", "document", f"t{i}", words, acl))
    vectors = rng.standard_normal((n, 384)).astype(np.float32)
    return chunks, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _check_no_leaks(store: VectorStore, queries: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    chunks, vectors = _random_corpus(rng, 600)
    store.upsert(chunks, vectors)
    keyword = KeywordIndex(store)
    by_id = {c.id: i for i, c in enumerate(chunks)}
    for _ in range(queries):
        allowed = sorted(set(rng.choice(GROUPS, size=int(rng.integers(0, 4))).tolist()))
        readable = [i for i, c in enumerate(chunks) if set(c.acl) & set(allowed)]
        query = rng.standard_normal(384).astype(np.float32)
        k = int(rng.integers(1, 20))
        dense = store.search("acme", query, allowed, k)
        # Filter-then-rank returns exactly the best readable chunks, k of them when it can;
        # two whose scores tie in float32 (seen: 1.2854064 and 1.2854068) may swap places.
        expected = sorted(readable, key=lambda i: -float(vectors[i] @ query))[:k]
        found = [by_id[cid] for cid, _ in dense]
        assert set(found) <= set(readable) and len(found) == len(expected)
        assert np.allclose(vectors[found] @ query, vectors[expected] @ query, atol=1e-5)
        words = " ".join(rng.choice(WORDS, size=2).tolist())
        for chunk, _ in keyword.search("acme", words, allowed, k):
            assert set(chunk.acl) & set(allowed), (chunk, allowed)


def test_acl_filter_never_leaks_and_never_trims_lancedb(tmp_path: Path) -> None:
    _check_no_leaks(LanceStore(tmp_path / "index"), queries=2000, seed=1)


def test_acl_filter_never_leaks_and_never_trims_pgvector(postgres_url: str) -> None:
    db = Database(postgres_url)
    db.migrate()
    try:
        _check_no_leaks(PgVectorStore(db), queries=500, seed=2)
    finally:
        with db.transaction() as conn:
            conn.exec_driver_sql("DELETE FROM grounding_chunks")
        db.dispose()


def test_pgvector_store_matches_lancedb_on_the_same_chunks(
    postgres_url: str, tmp_path: Path
) -> None:
    db = Database(postgres_url)
    db.migrate()
    rng = np.random.default_rng(3)
    chunks, vectors = _random_corpus(rng, 50)
    lance, pg = LanceStore(tmp_path / "index"), PgVectorStore(db)
    try:
        for store in (lance, pg):
            store.upsert(chunks, vectors)
            store.upsert(chunks[:5], vectors[:5])  # an upsert replaces, never duplicates
            assert len(store.chunks("acme")) == 50
            store.prune("acme", {"s:r0": None, "s:r1": "h", "s:r2": "newer"})
            assert {c.source_id for c in store.chunks("acme")} == {f"r{i}" for i in range(50)} - {
                "r0",
                "r2",
            }
        before = pg.version("acme")
        pg.upsert(chunks[1:2], vectors[1:2])
        assert pg.version("acme") != before
        query = vectors[10]
        assert [cid for cid, _ in lance.search("acme", query, ["*", "sales"], 5)] == [
            cid for cid, _ in pg.search("acme", query, ["*", "sales"], 5)
        ]
        assert pg.record_hashes("acme")["s:r1"] == "h"
        assert [c.id for c in pg.get("acme", ["c7", "nope", "c3"])] == ["c7", "c3"]
        assert lance.get("acme", ["c7", "nope", "c3"]) == pg.get("acme", ["c7", "nope", "c3"])
    finally:
        with db.transaction() as conn:
            conn.exec_driver_sql("DELETE FROM grounding_chunks")
        db.dispose()


# -- retrieval evaluation ----------------------------------------------------------------


def test_eval_retrieval_on_a_small_beir_set_writes_a_trec_run(tmp_path: Path) -> None:
    corpus = [
        {"_id": "d1", "title": "Sensor warranty", "text": "Sensors carry a 36 month warranty."},
        {"_id": "d2", "title": "Pairing", "text": "Hold the pair button for five seconds."},
        {"_id": "d3", "title": "Billing", "text": "Invoices are sent on the first of the month."},
    ]
    (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in corpus))
    queries = [{"_id": "q1", "text": "how long is the warranty"}, {"_id": "q2", "text": "pair"}]
    (tmp_path / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries))
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    result = evaluate_retrieval(
        tmp_path / "corpus.jsonl",
        tmp_path / "queries.jsonl",
        tmp_path / "qrels.tsv",
        run_path=tmp_path / "run.txt",
    )["hybrid"]
    assert result["ndcg@10"] == 1.0 and result["recall@100"] == 1.0 and result["queries"] == 2
    first = (tmp_path / "run.txt").read_text().splitlines()[0].split()
    assert first[:4] == ["q1", "Q0", "d1", "1"] and first[5] == "bastion-hybrid"
    assert read_qrels(tmp_path / "qrels.tsv") == {"q1": {"d1": 1}, "q2": {"d2": 1}}
