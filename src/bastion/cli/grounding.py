"""`bastion ingest`, `index`, `search` and `ask`: the company's data, read as a person may
(top-level commands, registered on the root app in `bastion.cli`)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from bastion.cli.common import _as, _platform, _progress, console, err, reports_errors
from bastion.errors import BastionError


@reports_errors
def ingest(
    sources: Annotated[
        list[str] | None, typer.Argument(help="Source names from bastion.yaml; default: all.")
    ] = None,
    link: Annotated[bool, typer.Option(help="Resolve identities across sources after.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the reports as JSON.")] = False,
) -> None:
    """Read sources into the harmonized store (incremental: only changes are written)."""
    platform = _platform()
    if not platform.config.sources:
        raise BastionError("no sources configured; add a `sources:` list to bastion.yaml")
    with _progress() as progress:
        task = progress.add_task("Reading records", total=None)
        reports = platform.grounding.ingest(
            sources or None, on_record=lambda: progress.advance(task)
        )
    result: dict[str, Any] = {"sources": [r.to_dict() for r in reports]}
    if link:
        tenants = sorted({r.tenant for r in reports})
        with err.status("Resolving identities ..."):
            result["identity"] = [platform.grounding.link_contacts(t) for t in tenants]
    if as_json:
        print(json.dumps(result, indent=2))
        return
    table = Table("source", "added", "updated", "unchanged", "removed", "skipped", "no ACL")
    for r in reports:
        table.add_row(
            r.source,
            *(str(n) for n in (r.added, r.updated, r.unchanged, r.removed)),
            str(len(r.skipped)),
            str(r.no_acl),
        )
    console.print(table)
    for r in reports:
        for skip in r.skipped[:20]:
            err.print(f"[yellow]skipped[/yellow] {r.source}: {skip.where}: {skip.reason}")
        if len(r.skipped) > 20:
            err.print(f"... and {len(r.skipped) - 20} more in {r.source} (use --json)")
    for ident in result.get("identity", []):
        err.print(
            f"{ident['tenant']}: {ident['records']} contact records -> {ident['contacts']} "
            f"people ({ident['merged_records']} merged); report in "
            f"{platform.home / 'reports' / ('identity-' + ident['tenant'] + '.json')}"
        )


@reports_errors
def index(
    tenant: Annotated[
        str | None, typer.Option(help="Tenant to index; default: every tenant with sources.")
    ] = None,
) -> None:
    """Chunk and embed new or changed records; drop chunks of deleted ones."""
    platform = _platform()
    tenants = [tenant] if tenant else platform.grounding.tenants
    reports = []
    with _progress() as progress:
        for name in tenants:
            task = progress.add_task(f"Embedding chunks of {name}", total=None)
            reports.append(
                platform.grounding.index(
                    name,
                    on_plan=lambda n, t=task: progress.update(t, total=n),
                    on_chunks=lambda n, t=task: progress.advance(t, n),
                ).to_dict()
            )
    print(json.dumps(reports, indent=2))


@reports_errors
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    as_user: Annotated[str, typer.Option("--as", help="Search as TENANT/USER (their ACL).")],
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=100, help="Results.")] = 5,
    mode: Annotated[str, typer.Option(help="hybrid, dense or bm25.")] = "hybrid",
    source: Annotated[list[str] | None, typer.Option(help="Only these sources.")] = None,
) -> None:
    """Show what a person would retrieve for a query: only chunks they may read."""
    if mode not in ("hybrid", "dense", "bm25"):
        raise BastionError(f"--mode must be hybrid, dense or bm25, not '{mode}'")
    platform = _platform()
    principal = _as(platform, as_user)
    hits = platform.grounding.search(principal, query, k=k, sources=source, mode=mode)
    table = Table("#", "score", "source", "record", "title", "text")
    for n, hit in enumerate(hits, 1):
        body = hit.chunk.text.split("\n", 1)[-1].replace("\n", " ")
        table.add_row(
            str(n),
            f"{hit.score:.4f}",
            hit.chunk.source,
            hit.chunk.source_id,
            hit.chunk.title[:40],
            body[:80],
        )
    console.print(table)
    if not hits:
        err.print(f"nothing {principal.tenant}/{principal.user} may read matches")


@reports_errors
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    as_user: Annotated[str, typer.Option("--as", help="Ask as TENANT/USER (their ACL).")],
    app_name: Annotated[str, typer.Option("--app", help="A grounded app.")] = "ask",
    max_tokens: Annotated[int, typer.Option(min=1)] = 200,
) -> None:
    """Answer from the company's data through the full pipeline, with citations."""
    from bastion.models import ChatMessage, GenerationParams
    from bastion.pipeline import ChatRequest

    platform = _platform()
    principal = _as(platform, as_user)
    request = ChatRequest(
        [ChatMessage("user", question)],
        GenerationParams(max_tokens=max_tokens, temperature=0.0),
        app=app_name,
    )
    with err.status("Retrieving and generating ..."):
        ctx = platform.pipeline.prepare(request, None, principal)
        completion = platform.pipeline.complete(ctx)
    console.print(completion.text, highlight=False)
    for c in completion.bastion.get("citations", []):
        err.print(f"[{c['n']}] {c['source']}:{c['record_id']}  {c['title']}", highlight=False)
    if completion.bastion.get("support") is not None:
        err.print(f"support: {completion.bastion['support']:.2f}  trace: {completion.trace_id}")
