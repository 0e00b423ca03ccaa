"""The grounding part as the rest of the platform uses it: ingest, link, index, search.

Heavy pieces (the embedder, the vector store, BM25 indexes) are created on first use, so
commands and servers that never ground anything never load them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select

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
        """Ingest the named sources (default: all), one transaction each."""
        known = [s.name for s in self.config.sources]
        for name in names or []:
            if name not in known:
                raise NotFound(f"no source named '{name}'; configured: {', '.join(known)}")
        chosen = [s for s in self.config.sources if not names or s.name in names]
        return [ingest_source(self.db, s, self.home, on_record=on_record) for s in chosen]

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
