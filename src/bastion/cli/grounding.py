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
    as_user: Annotated[
        str | None, typer.Option("--as", help="Ask as TENANT/USER (their ACL).")
    ] = None,
    app_name: Annotated[str, typer.Option("--app", help="A grounded app.")] = "ask",
    max_tokens: Annotated[int, typer.Option(min=1)] = 200,
    url: Annotated[
        str | None,
        typer.Option(envvar="BASTION_URL", help="A running server (default: bastion.yaml's)."),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(envvar="BASTION_API_KEY", help="An API key, to ask through the server."),
    ] = None,
) -> None:
    """Answer from the company's data through the full pipeline, with citations.

    Through a running server (`bastion serve`, models already loaded) when one answers and
    there is a key for the person: --key or BASTION_API_KEY without --as, or the demo's
    key for --as. Otherwise in this process, which loads the models first."""
    from bastion.config import bastion_home, load_config

    config = load_config()
    server = url or f"http://{config.server.host}:{config.server.port}"
    if as_user is not None:
        key = _demo_key(bastion_home(), as_user)  # never another person's key
    if key and _answers(server):
        answer, trace = _ask_server(server, key, question, app_name, max_tokens)
    elif as_user is None:
        raise BastionError(
            f"no server answers at {server} (start one with `bastion serve`), or give "
            "--as TENANT/USER to ask in this process"
        )
    else:
        err.print(
            f"No server at {server} (or no key for {as_user}): loading the models in this "
            "process, which takes a while; `bastion serve` keeps them loaded.",
            highlight=False,
        )
        answer, trace = _ask_here(as_user, question, app_name, max_tokens)
    console.print(answer["text"], highlight=False)
    for c in answer.get("citations", []):
        err.print(f"[{c['n']}] {c['source']}:{c['record_id']}  {c['title']}", highlight=False)
    if answer.get("support") is not None:
        err.print(f"support: {answer['support']:.2f}  trace: {trace}")


def _demo_key(home: Any, handle: str) -> str | None:
    """The demo's key for TENANT/USER, when this home is the demo's."""
    from bastion.demo import DEMO_KEYS_FILE

    try:
        keys = json.loads((home / DEMO_KEYS_FILE).read_text())
    except (OSError, ValueError):
        return None
    found = keys.get(handle) if isinstance(keys, dict) else None
    return found if isinstance(found, str) else None


def _answers(server: str) -> bool:
    import httpx

    try:
        return httpx.get(server.rstrip("/") + "/healthz", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def _ask_server(
    server: str, key: str, question: str, app: str, max_tokens: int
) -> tuple[dict[str, Any], str]:
    import httpx

    body = {
        "messages": [{"role": "user", "content": question}],
        "app": app,
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    try:
        response = httpx.post(
            server.rstrip("/") + "/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            timeout=300,
        )
    except httpx.HTTPError as exc:
        raise BastionError(f"the server at {server} failed: {exc}") from exc
    data = response.json()
    if response.status_code >= 400:
        raise BastionError(f"{response.status_code}: {data.get('error', {}).get('message')}")
    trust = data.get("bastion") or {}
    answer = {"text": data["choices"][0]["message"]["content"], **trust}
    return answer, str(trust.get("trace_id"))


def _ask_here(handle: str, question: str, app: str, max_tokens: int) -> tuple[dict[str, Any], str]:
    from bastion.models import ChatMessage, GenerationParams
    from bastion.pipeline import ChatRequest

    platform = _platform()
    principal = _as(platform, handle)
    request = ChatRequest(
        [ChatMessage("user", question)],
        GenerationParams(max_tokens=max_tokens, temperature=0.0),
        app=app,
    )
    with err.status("Retrieving and generating ..."):
        ctx = platform.pipeline.prepare(request, None, principal)
        completion = platform.pipeline.complete(ctx)
    return {"text": completion.text, **completion.bastion}, completion.trace_id
