"""The grounding part as the rest of the platform uses it: ingest, link, index, search.

Heavy pieces (the embedder, the vector store, BM25 indexes) are created on first use, so
commands and servers that never ground anything never load them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bastion.access import Principal
from bastion.config import BastionConfig
from bastion.errors import NotFound, PermissionDenied
from bastion.grounding.embedding import Embedder
from bastion.grounding.indexer import IndexReport, sync_index
from bastion.grounding.ingest import IngestReport, ingest_source
from bastion.grounding.retriever import Hit, Mode, Retriever, readable_by
from bastion.grounding.stores import VectorStore, open_store
from bastion.storage import Database
from bastion.storage.tables import GroundingRecord

_KEPT_SKIPS = 1000  # skipped records kept in a source's last ingest report


class Grounding:
    def __init__(self, config: BastionConfig, home: Path, db: Database) -> None:
        self.config = config
        self.home = home
        self.db = db
        self.embedder = Embedder()
        self._retriever: Retriever | None = None
        self._lock = threading.Lock()

    @property
    def tenants(self) -> list[str]:
        return sorted({s.tenant for s in self.config.sources})

    @property
    def retriever(self) -> Retriever:
        with self._lock:
            if self._retriever is None:
                store = open_store(self.config.grounding, self.home, self.db)
                self._retriever = Retriever(store, self.config.grounding, self.embedder)
            return self._retriever

    @property
    def store(self) -> VectorStore:
        return self.retriever.store

    def ingest(
        self, names: Sequence[str] | None = None, *, on_record: Callable[[], None] | None = None
    ) -> list[IngestReport]:
        """Ingest the named sources (default: all), one transaction each. Each source's
        report is also kept as its last ingest (reports/ingest/<source>.json): the skipped
        records and why are in no table."""
        known = [s.name for s in self.config.sources]
        for name in names or []:
            if name not in known:
                raise NotFound(f"no source named '{name}'; configured: {', '.join(known)}")
        chosen = [s for s in self.config.sources if not names or s.name in names]
        reports = []
        for source in chosen:
            report = ingest_source(self.db, source, self.home, on_record=on_record)
            self._keep_report(report)
            reports.append(report)
        return reports

    def _keep_report(self, report: IngestReport) -> None:
        kept = report.to_dict()
        kept["skipped_total"] = len(kept["skipped"])
        kept["skipped"] = kept["skipped"][:_KEPT_SKIPS]
        kept["finished_at"] = datetime.now(UTC).isoformat()
        folder = self.home / "reports" / "ingest"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{report.source}.json"
        partial = target.with_suffix(".json.partial")
        partial.write_text(json.dumps(kept, indent=2) + "\n")
        partial.replace(target)

    def last_ingest(self, tenant: str, source: str) -> dict[str, Any] | None:
        """The last ingest report of the tenant's source (IngestReport.to_dict with
        finished_at and skipped_total; at most the first 1000 skipped), if there is one."""
        path = self.home / "reports" / "ingest" / f"{source}.json"
        try:
            report: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        # A source moved to another tenant keeps its name: its old report is not theirs.
        return report if report.get("tenant") == tenant else None

    def inventory(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's stored records counted per source and entity, with the newest
        updated_at of each, ordered by source and entity."""
        query = (
            select(
                GroundingRecord.source,
                GroundingRecord.entity,
                func.count(),
                func.max(GroundingRecord.updated_at),
            )
            .where(GroundingRecord.tenant_id == tenant)
            .group_by(GroundingRecord.source, GroundingRecord.entity)
            .order_by(GroundingRecord.source, GroundingRecord.entity)
        )
        with self.db.session() as session:
            rows = session.execute(query).all()
        return [
            {"source": source, "entity": entity, "records": n, "updated_at": updated}
            for source, entity, n, updated in rows
        ]

    def merged_contacts(
        self, tenant: str, limit: int, offset: int = 0
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of the tenant's contacts whose records come from more than one source
        (identity resolution merged them), by contact id, each with its records; and how
        many such contacts there are in all."""
        merged = (
            select(GroundingRecord.contact_id)
            .where(GroundingRecord.tenant_id == tenant, GroundingRecord.contact_id.is_not(None))
            .group_by(GroundingRecord.contact_id)
            .having(func.count(func.distinct(GroundingRecord.source)) > 1)
        )
        with self.db.session() as session:
            total = session.scalar(select(func.count()).select_from(merged.subquery())) or 0
            paged = merged.order_by(GroundingRecord.contact_id).limit(limit).offset(offset)
            ids = [i for i in session.scalars(paged) if i is not None]
            rows = session.execute(
                select(
                    GroundingRecord.contact_id,
                    GroundingRecord.source,
                    GroundingRecord.source_id,
                    GroundingRecord.entity,
                    GroundingRecord.title,
                )
                .where(GroundingRecord.tenant_id == tenant, GroundingRecord.contact_id.in_(ids))
                .order_by(GroundingRecord.source, GroundingRecord.source_id)
            ).all()
        records: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
        for contact_id, source, source_id, entity, title in rows:
            records[str(contact_id)].append(
                {"source": source, "source_id": source_id, "entity": entity, "title": title}
            )
        contacts = [{"contact_id": i, "records": records[i]} for i in ids]
        return contacts, total

    def index(
        self,
        tenant: str,
        *,
        on_plan: Callable[[int], None] | None = None,
        on_chunks: Callable[[int], None] | None = None,
    ) -> IndexReport:
        return sync_index(
            self.db,
            self.store,
            self.embedder,
            self.config.grounding,
            tenant,
            on_plan=on_plan,
            on_chunks=on_chunks,
        )

    def link_contacts(self, tenant: str) -> dict[str, Any]:
        """Identity resolution over the tenant's contacts; writes each record's contact id
        and the merge report (reports/identity-<tenant>.json)."""
        from bastion.grounding.linking import link_contacts

        threshold = self.config.grounding.identity_threshold
        report: dict[str, Any] = link_contacts(self.db, tenant, threshold)
        folder = self.home / "reports"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"identity-{tenant}.json").write_text(json.dumps(report, indent=2) + "\n")
        return report

    def record(self, principal: Principal, source: str, source_id: str) -> GroundingRecord:
        """One stored record of the person's tenant that they may read (a case, an
        article): NotFound when there is none, PermissionDenied when they may not."""
        with self.db.session() as session:
            row = session.scalars(
                select(GroundingRecord).where(
                    GroundingRecord.tenant_id == principal.tenant,
                    GroundingRecord.source == source,
                    GroundingRecord.source_id == source_id,
                )
            ).first()
        if row is None:
            raise NotFound(f"no record '{source_id}' in source '{source}'")
        if not set(row.acl) & set(readable_by(principal)):
            raise PermissionDenied(f"you may not read '{source_id}' in source '{source}'")
        return row

    def search(
        self,
        principal: Principal,
        query: str,
        *,
        k: int | None = None,
        sources: Sequence[str] | None = None,
        mode: Mode | None = None,
    ) -> list[Hit]:
        """What `principal` may read that best answers `query`."""
        return self.retriever.search(
            principal.tenant, query, readable_by(principal), k=k, sources=sources, mode=mode
        )

    def load(self) -> None:
        """Load the embedder and build each tenant's keyword index before serving."""
        self.embedder.load()
        for tenant in self.tenants:
            self.retriever.keyword.warm(tenant)
