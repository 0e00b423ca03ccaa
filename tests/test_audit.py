from __future__ import annotations

import io
import json
import threading
from dataclasses import replace

import pytest
from sqlalchemy import delete, select, update

from bastion.audit import ActivityBucket, AuditEntry, AuditLog, AuditQuery
from bastion.audit.log import chain_hash
from bastion.errors import NotFound
from bastion.storage import Database
from bastion.storage.tables import AuditHead, AuditRecord


def entry(n: int, tenant: str = "acme") -> AuditEntry:
    return AuditEntry(
        trace_id=f"trace-{tenant}-{n}",
        tenant=tenant,
        user="alice",
        role="admin",
        key_id="k",
        app="chat",
        model="echo",
        status="ok",
        prompt=[{"role": "user", "content": f"question {n}"}],
        response=f"answer {n}",
        prompt_tokens=2,
        completion_tokens=2,
    )


@pytest.fixture
def db(db_url: str) -> Database:
    database = Database(db_url)
    database.migrate()
    return database


@pytest.fixture
def log(db: Database) -> AuditLog:
    audit = AuditLog(db)
    for n in range(1, 6):
        audit.append(entry(n))
    return audit


def test_an_untouched_chain_verifies(log: AuditLog) -> None:
    report = log.verify()
    assert report.ok and report.records == 5
    assert [r["seq"] for r in log.records()] == [1, 2, 3, 4, 5]


def test_an_empty_chain_verifies(db: Database) -> None:
    assert AuditLog(db).verify().ok


def test_an_edited_record_is_named(log: AuditLog, db: Database) -> None:
    with db.session() as s:
        rec = s.get(AuditRecord, 3)
        assert rec is not None
        rec.body = rec.body.replace("answer 3", "answer 33")
    report = log.verify()
    assert not report.ok and report.first_bad_seq == 3
    assert "changed" in (report.reason or "")


def test_an_edit_that_rehashes_the_record_still_breaks_the_next_link(
    log: AuditLog, db: Database
) -> None:
    with db.session() as s:
        rec = s.get(AuditRecord, 2)
        assert rec is not None
        rec.body = rec.body.replace("answer 2", "forged")
        rec.hash = chain_hash(rec.seq, rec.prev_hash, rec.body)
    report = log.verify()
    assert not report.ok and report.first_bad_seq == 3


def test_a_deleted_record_is_named(log: AuditLog, db: Database) -> None:
    with db.session() as s:
        s.execute(delete(AuditRecord).where(AuditRecord.seq == 2))
    report = log.verify()
    assert not report.ok and report.first_bad_seq == 2
    assert "deleted" in (report.reason or "")


def test_a_truncated_tail_is_noticed(log: AuditLog, db: Database) -> None:
    with db.session() as s:
        s.execute(delete(AuditRecord).where(AuditRecord.seq == 5))
    report = log.verify()
    assert not report.ok and report.first_bad_seq == 5


def test_an_inserted_record_is_named(log: AuditLog, db: Database) -> None:
    with db.session() as s:
        s.execute(update(AuditRecord).where(AuditRecord.seq >= 3).values(seq=AuditRecord.seq + 10))
        s.flush()
        s.execute(update(AuditRecord).where(AuditRecord.seq >= 13).values(seq=AuditRecord.seq - 9))
        prev = s.get(AuditRecord, 2)
        assert prev is not None
        body = json.dumps({"trace_id": "fake", "tenant": "acme"})
        s.add(
            AuditRecord(
                seq=3,
                trace_id="fake",
                created_at="x",
                tenant_id="acme",
                body=body,
                prev_hash=prev.hash,
                hash=chain_hash(3, prev.hash, body),
                verdict="allow",  # its searched columns as an append would have set them
                tokens=0,
            )
        )
    report = log.verify()
    assert not report.ok and report.first_bad_seq == 4


def test_swapped_records_are_noticed(log: AuditLog, db: Database) -> None:
    with db.session() as s:
        a, b = s.get(AuditRecord, 2), s.get(AuditRecord, 3)
        assert a is not None and b is not None
        a.body, b.body = b.body, a.body
        a.trace_id, b.trace_id = "tmp", a.trace_id
        s.flush()
        a.trace_id = json.loads(a.body)["trace_id"]
    report = log.verify()
    assert not report.ok and report.first_bad_seq == 2


def test_a_moved_head_is_noticed(log: AuditLog, db: Database) -> None:
    with db.session() as s:
        s.execute(update(AuditHead).values(seq=6))
    assert not log.verify().ok


def test_zero_retention_keeps_hashes_but_no_text(db: Database) -> None:
    log = AuditLog(db, retain_text=False)
    log.append(entry(1))
    record = next(log.records())
    assert record["prompt"] is None and record["response"] is None
    assert len(record["prompt_sha256"]) == 64 and len(record["response_sha256"]) == 64
    assert record["prompt_tokens"] == 2 and record["user"] == "alice"
    assert "question" not in json.dumps(record)
    assert log.verify().ok


def test_concurrent_appends_keep_one_unbroken_chain(db: Database) -> None:
    log = AuditLog(db)

    def worker(w: int) -> None:
        for n in range(15):
            log.append(entry(w * 100 + n))

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = log.verify()
    assert report.ok and report.records == 90


def test_two_logs_on_one_database_share_the_chain(db: Database, db_url: str) -> None:
    """Two replicas (two engines) appending at once still make one valid chain."""
    other = Database(db_url)
    logs = [AuditLog(db), AuditLog(other)]
    threads = [
        threading.Thread(target=lambda i=i: [logs[i].append(entry(n, f"t{i}")) for n in range(20)])
        for i in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert logs[0].verify().ok and logs[0].verify().records == 40
    other.dispose()


def test_reads_are_scoped_by_tenant(log: AuditLog) -> None:
    log.append(entry(1, tenant="globex"))
    assert {r["tenant"] for r in log.recent("globex")} == {"globex"}
    assert log.get("trace-globex-1", "globex")["response"] == "answer 1"
    with pytest.raises(NotFound):
        log.get("trace-globex-1", "acme")


def test_export_writes_jsonl(log: AuditLog) -> None:
    out = io.StringIO()
    assert log.export(out) == 5
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert rows[0]["prev_hash"] == "0" * 64 and rows[1]["prev_hash"] == rows[0]["hash"]


def test_head_tracks_the_last_record(log: AuditLog, db: Database) -> None:
    with db.session() as s:
        head = s.execute(select(AuditHead)).scalar_one()
    assert head.seq == 5 and head.hash == log.verify().head_hash


def test_a_searched_column_edited_apart_from_the_body_is_named(log: AuditLog, db: Database) -> None:
    with db.session() as s:  # hide a blocked request from searches without touching its hash
        s.execute(update(AuditRecord).where(AuditRecord.seq == 2).values(status="blocked"))
    report = log.verify()
    assert not report.ok and report.first_bad_seq == 2
    assert "indexed columns" in (report.reason or "")


def test_search_filters_and_pages_newest_first(db: Database) -> None:
    audit = AuditLog(db)
    for n in range(1, 8):
        e = entry(n)
        e.user = "bob" if n % 2 else "alice"
        e.verdicts = [{"guard": "toxicity", "action": "flag" if n == 3 else "allow"}]
        audit.append(e)
    audit.append(entry(99, tenant="globex"))
    bob = AuditQuery(tenant="acme", user="bob", limit=2)
    first = audit.search(bob)
    assert first.total == 4 and [r["trace_id"] for r in first.records] == [
        "trace-acme-7",
        "trace-acme-5",
    ]
    assert first.newer is None and first.older is not None
    second = audit.search(replace(bob, before=first.older))
    assert [r["trace_id"] for r in second.records] == ["trace-acme-3", "trace-acme-1"]
    assert second.older is None and second.newer is not None
    back = audit.search(replace(bob, after=second.newer))
    assert back.records == first.records and back.newer is None and back.older == first.older
    flagged = audit.search(AuditQuery(tenant="acme", verdict="flag"))
    assert [r["trace_id"] for r in flagged.records] == ["trace-acme-3"]
    assert audit.search(AuditQuery(tenant="acme", since="2999-01-01")).total == 0
    assert audit.search(AuditQuery(tenant="globex")).total == 1


def test_search_for_guarded_records_leaves_out_those_every_guard_allowed(db: Database) -> None:
    audit = AuditLog(db)
    for n, actions in enumerate([["allow"], ["allow", "flag"], [], ["redact"], ["block"]]):
        e = entry(n)
        e.verdicts = [{"guard": f"g{i}", "action": a} for i, a in enumerate(actions)]
        audit.append(e)
    audit.append(replace(entry(9, tenant="globex"), verdicts=[{"guard": "g", "action": "block"}]))
    guarded = audit.search(AuditQuery(tenant="acme", guarded=True))
    assert [r["trace_id"] for r in guarded.records] == [
        "trace-acme-4",
        "trace-acme-3",
        "trace-acme-1",
    ]
    assert audit.search(AuditQuery(tenant="acme", guarded=True, verdict="block")).total == 1


def test_matching_reads_every_match_oldest_first_across_batches(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bastion.audit.log._BATCH", 3)  # several batches from a short trail
    audit = AuditLog(db)
    for n in range(1, 9):
        e = entry(n)
        e.user = "bob" if n % 2 else "alice"
        audit.append(e)
    found = [r["trace_id"] for r in audit.matching(AuditQuery(tenant="acme", user="bob"))]
    assert found == ["trace-acme-1", "trace-acme-3", "trace-acme-5", "trace-acme-7"]


def test_activity_sums_each_hour_and_reads_its_latency_percentiles(db: Database) -> None:
    audit = AuditLog(db)
    # (hour, status, strictest action, latency): hours out of order, latencies unsorted
    rows = [
        ("2030-01-01T10", "ok", "allow", 40.0),
        ("2030-01-01T11", "error", "allow", 20.0),
        ("2030-01-01T10", "ok", "flag", 10.0),
        ("2030-01-01T11", "ok", "redact", 60.0),
        ("2030-01-01T10", "blocked", "block", 30.0),
        ("2029-12-31T23", "ok", "allow", 999.0),  # before the period
    ]
    for n, (hour, status, action, latency) in enumerate(rows):
        e = replace(entry(n), status=status, latency_ms=latency)
        e.verdicts = [{"guard": "g", "action": action}]
        audit.append(e)
        with db.session() as s:  # the hour it was filed in, as if written then
            s.execute(
                update(AuditRecord)
                .where(AuditRecord.trace_id == e.trace_id)
                .values(created_at=f"{hour}:30:00+00:00")
            )
    audit.append(replace(entry(9, tenant="globex"), latency_ms=5.0))  # another tenant's
    summed = audit.activity("acme", "2030-01-01T00:00:00+00:00", width=13)
    # An even count's median is the mean of the middle two; the p95 is the lower nearest rank.
    assert summed.buckets == [
        ActivityBucket("2030-01-01T10", requests=3, blocked=1, flagged=1, tokens=12,
                       latency_p50=30.0, latency_p95=30.0),
        ActivityBucket("2030-01-01T11", requests=2, flagged=1, errors=1, tokens=8,
                       latency_p50=40.0, latency_p95=20.0),
    ]  # fmt: skip
    assert summed.latency_p50 == 30.0  # of all five, not of the hours' medians
    assert audit.activity("nobody", "2030-01-01", width=13).buckets == []
