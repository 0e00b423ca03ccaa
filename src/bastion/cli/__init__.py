"""The `bastion` command line: a thin layer over the library.

Commands that need no model never import torch; those that take long show progress.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from bastion.config import CONFIG_FILE_NAME, bastion_home, load_config
from bastion.errors import BastionError

app = typer.Typer(
    help="Bastion: an OpenAI-compatible gateway for open models, with guards and audit.",
    no_args_is_help=True,
)
models_app = typer.Typer(help="The model registry.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (shown once, stored hashed).", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)
demo_app = typer.Typer(help="The demo tenant.", no_args_is_help=True)
config_app = typer.Typer(help="The configuration file.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate guards and models on labelled data.", no_args_is_help=True)
guards_app = typer.Typer(help="The trust guards.", no_args_is_help=True)
guards_train_app = typer.Typer(help="Train a guard's classifier.", no_args_is_help=True)
guards_app.add_typer(guards_train_app, name="train")
ab_app = typer.Typer(help="A/B experiments between models or prompts.", no_args_is_help=True)
protect_app = typer.Typer(
    help="Protected works: texts and code answers must not reproduce.", no_args_is_help=True
)
app.add_typer(protect_app, name="protect")
tune_app = typer.Typer(help="Fine-tuning from feedback.", no_args_is_help=True)
app.add_typer(tune_app, name="tune")
app.add_typer(ab_app, name="ab")
app.add_typer(models_app, name="models")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(demo_app, name="demo")
app.add_typer(config_app, name="config")
app.add_typer(eval_app, name="eval")
app.add_typer(guards_app, name="guards")

console = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(fn: F) -> F:
    """Print Bastion errors as one clear line and exit 1, instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BastionError as exc:
            err.print(f"[red]error:[/red] {exc.message}", highlight=False)
            raise typer.Exit(1) from exc

    return wrapper  # type: ignore[return-value]


def _platform() -> Any:
    from bastion.platform import Platform

    return Platform.open()


@app.command()
@reports_errors
def serve(
    host: Annotated[str | None, typer.Option(help="Default: server.host")] = None,
    port: Annotated[int | None, typer.Option(help="Default: server.port")] = None,
    preload: Annotated[bool, typer.Option(help="Load the default model before listening.")] = True,
) -> None:
    """Start the HTTP server."""
    import uvicorn

    from bastion.observability import configure_logging
    from bastion.server import create_app

    platform = _platform()
    cfg = platform.config
    configure_logging(cfg.logging.level, cfg.logging.json_format)
    if preload:
        with err.status(f"Loading model {cfg.resolved_default_model} ..."):
            platform.registry.backend(cfg.resolved_default_model)
    with err.status("Loading the guards' models ..."):
        platform.pipeline.load_guards()
    host, port = host or cfg.server.host, port or cfg.server.port
    err.print(f"Bastion {_version()} listening on [bold]http://{host}:{port}[/bold] (docs: /docs)")
    uvicorn.run(create_app(platform), host=host, port=port, log_level="warning")


def _version() -> str:
    from bastion import __version__

    return __version__


@app.command()
@reports_errors
def chat(
    prompt: Annotated[
        str | None,
        typer.Argument(help="One-shot prompt; omit for an interactive chat."),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name; default: the app's model.")] = None,
    app_name: Annotated[str, typer.Option("--app", help="Bastion app.")] = "chat",
    system: Annotated[str | None, typer.Option(help="A system message.")] = None,
    max_tokens: Annotated[int, typer.Option(min=1)] = 256,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0)] = 0.7,
    url: Annotated[
        str, typer.Option(envvar="BASTION_URL", help="Server URL.")
    ] = "http://127.0.0.1:8080",
    key: Annotated[str | None, typer.Option(envvar="BASTION_API_KEY", help="API key.")] = None,
    stream: Annotated[bool, typer.Option(help="Print tokens as they arrive.")] = True,
) -> None:
    """Chat with a model through a running server (tokens stream as they come)."""
    from bastion.cli.chat_client import ChatClient

    if not key:
        raise BastionError(
            "no API key: pass --key or set BASTION_API_KEY (see `bastion keys create`)"
        )
    client = ChatClient(
        url,
        key,
        model=model,
        app=app_name,
        max_tokens=max_tokens,
        temperature=temperature,
    )
    history: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    if prompt is not None:
        history.append({"role": "user", "content": prompt})
        client.send(history, stream=stream, out=console)
        return
    err.print(
        "Interactive chat; an empty line or Ctrl-D ends it. "
        "Rate the last answer with /up, /down or /rate 1-5."
    )
    ratings: dict[str, dict[str, Any]] = {"/up": {"thumbs": "up"}, "/down": {"thumbs": "down"}}
    while True:
        try:
            line = console.input("[bold cyan]you>[/bold cyan] ")
        except EOFError:
            break
        if not line.strip():
            break
        command = line.strip().split()
        if command[0] in ratings or command[0] == "/rate":
            try:
                body = ratings.get(command[0]) or {"rating": int(command[1])}
                client.feedback(body)
                err.print("[dim]feedback sent[/dim]")
            except (IndexError, ValueError):
                err.print("usage: /rate N, with N from 1 to 5")
            except BastionError as exc:
                err.print(f"[red]feedback not sent:[/red] {exc.message}")
            continue
        history.append({"role": "user", "content": line})
        answer = client.send(history, stream=stream, out=console)
        history.append({"role": "assistant", "content": answer})


@models_app.command("list")
@reports_errors
def models_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the registered models with size, context length and prices."""
    from bastion.models.registry import model_info

    cfg = load_config()
    infos = [model_info(m) for m in cfg.models]
    if as_json:
        rows = [
            {
                "name": i.name,
                "backend": i.backend,
                "parameters": i.parameters,
                "context_length": i.context_length,
                "price": vars(i.price),
            }
            for i in infos
        ]
        console.print_json(json.dumps(rows))
        return
    table = Table("name", "backend", "parameters", "context", "$/1M in", "$/1M out", "$/GPU-hour")
    for i in infos:
        params = f"{i.parameters / 1e6:,.1f}M" if i.parameters else "?"
        gpu = f"{i.price.gpu_hour:.2f}" if i.price.gpu_hour is not None else "-"
        table.add_row(
            i.name,
            i.backend,
            params,
            f"{i.context_length:,}",
            f"{i.price.input_per_1m:.2f}",
            f"{i.price.output_per_1m:.2f}",
            gpu,
        )
    console.print(table)


@models_app.command("prepare")
@reports_errors
def models_prepare() -> None:
    """Convert the embedded model once (about 20 s) so later starts load in about a second."""
    from bastion.models.embedded import (
        is_prepared,
        model_cache_root,
        prepare_embedded_model,
    )

    root = model_cache_root(bastion_home())
    if is_prepared(root):
        err.print(f"Embedded model ready in {root}")
        return
    with err.status("Converting the embedded model (one time, about 20 s) ..."):
        path = prepare_embedded_model(root)
    err.print(f"Embedded model converted to {path}")


@keys_app.command("create")
@reports_errors
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant (created if new).")],
    user: Annotated[str, typer.Option(help="User (created if new).")],
    role: Annotated[str, typer.Option(help="admin, developer or user.")] = "user",
    group: Annotated[list[str] | None, typer.Option(help="Group membership (repeatable).")] = None,
    label: Annotated[str | None, typer.Option(help="A note to recognise the key by.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print the key alone.")] = False,
) -> None:
    """Create an API key. It is shown once; only a salted hash is stored."""
    created = _platform().access.create_key(
        tenant=tenant, user=user, role=role, groups=group, label=label
    )
    if quiet:
        print(created.secret)
        return
    console.print(
        f"Key [bold]{created.key_id}[/bold] for {tenant}/{user} ({role}); "
        "store it now, it is not shown again:"
    )
    print(created.secret)


@keys_app.command("list")
@reports_errors
def keys_list(tenant: Annotated[str | None, typer.Option()] = None) -> None:
    """List keys (ids only; secrets are never stored)."""
    table = Table("id", "tenant", "user", "role", "label", "created", "revoked")
    for k in _platform().access.list_keys(tenant):
        table.add_row(
            k.key_id,
            k.tenant,
            k.user,
            k.role,
            k.label or "",
            f"{k.created_at:%Y-%m-%d %H:%M}",
            f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "",
        )
    console.print(table)


@keys_app.command("revoke")
@reports_errors
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `keys list`).")],
) -> None:
    """Revoke a key; requests with it get 401 from now on."""
    _platform().access.revoke(key_id)
    err.print(f"Revoked {key_id}")


@audit_app.command("verify")
@reports_errors
def audit_verify() -> None:
    """Check the whole hash chain; exit 1 and name the first bad record if it was tampered with."""
    with err.status("Verifying the audit chain ..."):
        report = _platform().audit.verify()
    if report.ok:
        console.print(f"[green]OK[/green]: {report.records} records, chain head {report.head_hash}")
        return
    console.print(f"[red]TAMPERED[/red]: record {report.first_bad_seq}: {report.reason}")
    raise typer.Exit(1)


@audit_app.command("show")
@reports_errors
def audit_show(
    tenant: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1)] = 20,
    trace: Annotated[str | None, typer.Option(help="Show one record in full.")] = None,
) -> None:
    """Show the latest audit records, or one in full."""
    platform = _platform()
    if trace:
        console.print_json(json.dumps(platform.audit.get(trace, tenant)))
        return
    table = Table(
        "seq",
        "time",
        "tenant",
        "user",
        "app",
        "model",
        "status",
        "tokens",
        "ms",
        "trace",
    )
    for r in platform.audit.recent(tenant, limit):
        table.add_row(
            str(r["seq"]),
            r["created_at"][:19],
            r["tenant"] or "-",
            r["user"] or "-",
            r["app"],
            r["model"] or "-",
            r["status"],
            f"{r['prompt_tokens']}+{r['completion_tokens']}",
            f"{r['latency_ms']:.0f}",
            r["trace_id"],
        )
    console.print(table)


@audit_app.command("export")
@reports_errors
def audit_export(
    out: Annotated[Path | None, typer.Option(help="JSONL file; default: standard output.")] = None,
    tenant: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Export records as JSONL (each with its seq, hash and previous hash)."""
    audit = _platform().audit
    if out is None:
        count = audit.export(sys.stdout, tenant)
    else:
        tmp = out.with_name(out.name + ".part")
        with tmp.open("w", encoding="utf-8") as f:
            count = audit.export(f, tenant)
        os.replace(tmp, out)
    err.print(f"Exported {count} records")


def _progress() -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


@app.command()
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


@app.command()
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


def _as(platform: Any, handle: str) -> Any:
    return platform.access.principal(handle)


@app.command()
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


@app.command()
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


def _experiment(platform: Any, name: str, tenant: str | None) -> tuple[str, str]:
    """(tenant, name): the tenant may be left out when one tenant has that experiment."""
    if tenant:
        return tenant, name
    owners = [e["tenant"] for e in platform.experiments.store.list() if e["name"] == name]
    if len(owners) != 1:
        found = "no tenant" if not owners else f"tenants {', '.join(owners)}"
        raise BastionError(f"experiment '{name}' is in {found}; pass --tenant")
    return owners[0], name


TenantOption = Annotated[str | None, typer.Option(help="Tenant; default: the one that has it.")]


@ab_app.command("create")
@reports_errors
def ab_create(
    spec_file: Annotated[Path, typer.Argument(help="The experiment as YAML or JSON.")],
) -> None:
    """Start an experiment (fields: see `experiments` in the configuration reference)."""
    import yaml
    from pydantic import ValidationError

    from bastion.config import ExperimentConfig

    if not spec_file.is_file():
        raise BastionError(f"{spec_file} does not exist")
    try:
        spec = ExperimentConfig.model_validate(yaml.safe_load(spec_file.read_text()))
    except (yaml.YAMLError, ValidationError) as exc:
        raise BastionError(f"{spec_file} is not a valid experiment: {exc}") from exc
    console.print_json(data=_platform().experiments.store.create(spec))


@ab_app.command("list")
@reports_errors
def ab_list(tenant: TenantOption = None) -> None:
    """Experiments and their state."""
    table = Table("tenant", "name", "app", "status", "unit", "traffic", "arms", "stopped arms")
    for e in _platform().experiments.store.list(tenant):
        table.add_row(
            e["tenant"],
            e["name"],
            e["app"],
            e["status"],
            e["unit"],
            f"{e['traffic']:g}%",
            ", ".join(e["variants"]),
            ", ".join(e["stopped_arms"]) or "-",
        )
    console.print(table)


@ab_app.command("status")
@reports_errors
def ab_status(name: str, tenant: TenantOption = None) -> None:
    """Requests per arm and the current decision."""
    platform = _platform()
    report, _ = platform.experiments.report(*_experiment(platform, name, tenant))
    console.print(f"{name} ({report['status']}): {report['decision']}")
    for arm, n in report["requests"].items():
        stopped = report["stopped_arms"].get(arm)
        console.print(f"  {arm}: {n} requests" + (f" (stopped: {stopped})" if stopped else ""))


@ab_app.command("report")
@reports_errors
def ab_report(
    name: str,
    tenant: TenantOption = None,
    html: Annotated[Path | None, typer.Option(help="Also write an HTML page with plots.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Metrics per arm with always-valid confidence intervals, guardrails and a decision."""
    from bastion.experiments.report import render_html, render_table

    platform = _platform()
    report, arms = platform.experiments.report(*_experiment(platform, name, tenant))
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        console.print(render_table(report))
        for arm, decision in report["decisions"].items():
            console.print(f"{arm}: {decision['verdict']}: {decision['reason']}", highlight=False)
    if html is not None:
        html.write_text(render_html(report, arms), encoding="utf-8")
        err.print(f"Wrote {html}")


@ab_app.command("stop")
@reports_errors
def ab_stop(name: str, tenant: TenantOption = None) -> None:
    """Stop an experiment: every request goes back to the app's own settings."""
    platform = _platform()
    platform.experiments.stop(*_experiment(platform, name, tenant))
    err.print(f"stopped {name}")


@ab_app.command("promote")
@reports_errors
def ab_promote(
    name: str,
    arm: str,
    tenant: TenantOption = None,
    force: Annotated[
        bool, typer.Option(help="Promote even though the arm's model fails the bias gate.")
    ] = False,
) -> None:
    """End an experiment naming the winning arm; prints the settings to make the default.
    Refused when the arm's model fails the bias gate on its `bastion eval bias` report."""
    platform = _platform()
    outcome = platform.experiments.promote(*_experiment(platform, name, tenant), arm, force)
    console.print_json(data=outcome)
    err.print("Make these the app's settings in bastion.yaml (model, system_prompt).")


@ab_app.command("simulate")
@reports_errors
def ab_simulate(
    effect: Annotated[float, typer.Option(help="True difference in rate (B - A); 0: A/A.")],
    experiments: Annotated[int, typer.Option(min=1, help="Simulated experiments.")] = 1000,
    peek_every: Annotated[int, typer.Option(min=1, help="Look after every K per arm.")] = 10,
    base_rate: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.3,
    max_samples: Annotated[int, typer.Option(min=10, help="Per arm.")] = 2000,
    seed: int = 0,
) -> None:
    """Simulate experiments with peeking: rejection rate, samples to decision, power."""
    from bastion.experiments.stats import simulate

    try:
        result = simulate(
            effect,
            experiments,
            peek_every,
            base_rate=base_rate,
            max_samples_per_arm=max_samples,
            seed=seed,
        )
    except ValueError as exc:
        raise BastionError(str(exc)) from exc
    print(json.dumps(result, indent=2))


@ab_app.command("size")
@reports_errors
def ab_size(
    base_rate: Annotated[
        float | None, typer.Option(help="Control's rate, for a rate metric (0-1).")
    ] = None,
    sd: Annotated[float | None, typer.Option(help="Metric's SD, for a mean metric.")] = None,
    effect: Annotated[float, typer.Option(help="Smallest difference worth detecting.")] = 0.05,
    power: Annotated[float, typer.Option(min=0.01, max=0.99)] = 0.8,
    alpha: Annotated[float, typer.Option(min=0.001, max=0.5)] = 0.05,
) -> None:
    """Samples per arm to detect an effect (fixed horizon; plan about 2x for peeking)."""
    from bastion.experiments import stats

    if (base_rate is None) == (sd is None):
        raise BastionError("give --base-rate (a rate metric) or --sd (a mean metric), not both")
    try:
        n = (
            stats.sample_size_proportions(base_rate, effect, alpha, power)
            if base_rate is not None
            else stats.sample_size_means(sd or 0.0, effect, alpha, power)
        )
    except ValueError as exc:
        raise BastionError(str(exc)) from exc
    print(
        json.dumps(
            {
                "per_arm_fixed_horizon": n,
                "per_arm_sequential_horizon": int(n * stats.HORIZON_INFLATION),
                "effect": effect,
                "power": power,
                "alpha": alpha,
            },
            indent=2,
        )
    )


@app.command()
@reports_errors
def feedback(
    trace_id: Annotated[str, typer.Argument(help="The answer's trace id.")],
    up: Annotated[bool | None, typer.Option("--up/--down", help="Thumbs up or down.")] = None,
    rating: Annotated[int | None, typer.Option(min=1, max=5, help="1 to 5.")] = None,
    correction: Annotated[str | None, typer.Option(help="The answer as it should be.")] = None,
    comment: Annotated[str | None, typer.Option()] = None,
    url: Annotated[
        str, typer.Option(envvar="BASTION_URL", help="Server URL.")
    ] = "http://127.0.0.1:8080",
    key: Annotated[str | None, typer.Option(envvar="BASTION_API_KEY", help="API key.")] = None,
) -> None:
    """Rate an answer through a running server (POST /v1/feedback)."""
    from bastion.cli.chat_client import send_feedback

    if not key:
        raise BastionError("no API key: pass --key or set BASTION_API_KEY")
    thumbs = None if up is None else ("up" if up else "down")
    body = {
        "trace_id": trace_id,
        "thumbs": thumbs,
        "rating": rating,
        "corrected_text": correction,
        "comment": comment,
    }
    console.print_json(
        data=send_feedback(url, key, {k: v for k, v in body.items() if v is not None})
    )


@demo_app.command("init")
@reports_errors
def demo_init(
    data: Annotated[
        bool, typer.Option(help="Also write, ingest and index the demo company's data.")
    ] = True,
    scale: Annotated[float, typer.Option(min=0.05, max=10, help="Size of the company.")] = 1.0,
) -> None:
    """Create the demo configuration (if missing), tenant, users, keys and company data."""
    from bastion.demo import DEMO_KEYS_FILE, init_demo, prepare_demo_data, write_default_config

    home = bastion_home()
    written = write_default_config(home)
    if written:
        err.print(f"Wrote {written}")
    platform = _platform()
    keys = init_demo(home, platform.access)
    if data and platform.config.sources:
        with _progress() as progress:
            task = progress.add_task("Embedding chunks", total=None)
            summary = prepare_demo_data(
                platform,
                scale=scale,
                on_stage=lambda stage: progress.update(task, description=stage),
                on_chunks=(
                    lambda n: progress.update(task, total=n, description="Embedding chunks"),
                    lambda n: progress.advance(task, n),
                ),
            )
        records = sum(s["added"] + s["updated"] + s["unchanged"] for s in summary["sources"])
        chunks = sum(i["chunks_written"] for i in summary["index"])
        err.print(
            f"Demo data: {records} records from {len(summary['sources'])} sources "
            f"in {home / 'data'}; {chunks} chunks (re)indexed"
        )
    path = home / DEMO_KEYS_FILE
    err.print(f"Demo users: {', '.join(keys)}; their keys are in {path}")
    err.print("Use the demo admin's key with `bastion chat` or any OpenAI client:")
    err.print(
        f'  export BASTION_API_KEY=$(python3 -c "import json; '
        f"print(json.load(open('{path}'))['acme/alice'])\")",
        highlight=False,
        soft_wrap=True,
    )
    err.print('Or ask the company data as someone: bastion ask "..." --as acme/carol')


@config_app.command("check")
@reports_errors
def config_check() -> None:
    """Validate bastion.yaml with the environment overrides and print the result."""
    cfg = load_config()
    err.print(f"[green]valid[/green]: {bastion_home() / CONFIG_FILE_NAME}")
    console.print_json(cfg.model_dump_json())


@config_app.command("reference")
def config_reference() -> None:
    """Print every setting with its type, default and meaning (Markdown)."""
    from bastion.config import reference_markdown

    print(reference_markdown(), end="")


@guards_train_app.command("injection")
@reports_errors
def train_injection(
    out: Annotated[Path, typer.Option(help="Folder for injection.joblib and its card.")],
    data: Annotated[
        list[Path] | None, typer.Option(help='{"text", "label"} JSONL (repeatable).')
    ] = None,
    attacks: Annotated[
        list[Path] | None, typer.Option(help="Attack prompts: text, JSON or a folder (repeatable).")
    ] = None,
    benign: Annotated[
        list[Path] | None, typer.Option(help="More benign prompts (the shipped ones always join).")
    ] = None,
    cv: Annotated[int, typer.Option(help="Also report k-fold cross-validation (0: skip).")] = 5,
) -> None:
    """Train the prompt-injection classifier; prints its card (and cross-validation) as JSON."""
    from bastion.guards.injection.train import build_training_set, cross_validate, train

    examples = build_training_set(data or [], attacks or [], benign or [])
    command = "bastion guards train injection " + shlex.join(sys.argv[4:])
    result: dict[str, Any] = {}
    if cv:
        with err.status(f"{cv}-fold cross-validation ..."):
            result["cross_validation"] = cross_validate(examples, folds=cv)
    with err.status(f"Training on {len(examples)} examples ..."):
        result["card"] = train(examples, out, command)
    print(json.dumps(result, indent=2))


@guards_train_app.command("toxicity")
@reports_errors
def train_toxicity(
    out: Annotated[Path, typer.Option(help="Folder for toxicity.joblib and its card.")],
    data: Annotated[
        list[Path],
        typer.Option(help="Davidson, HatemojiBuild, Stormfront, Jigsaw CSV or JSONL (repeatable)."),
    ],
    licence: Annotated[
        list[str] | None, typer.Option(help="Licence of the data, recorded in the card.")
    ] = None,
) -> None:
    """Train the toxicity and hate classifier; prints its card as JSON."""
    from bastion.guards.toxicity.train import read_examples, train

    examples = [e for path in data for e in read_examples(path)]
    command = "bastion guards train toxicity " + shlex.join(sys.argv[4:])
    with err.status(f"Training on {len(examples)} examples ..."):
        card = train(examples, out, command, licence or [])
    print(json.dumps({"card": card}, indent=2))


def _protected_registry() -> Any:
    from bastion.copyright.registry import ProtectedRegistry

    path = Path(load_config().guards.copyright.index_path).expanduser()
    return ProtectedRegistry(path if path.is_absolute() else bastion_home() / path)


@protect_app.command("add")
@reports_errors
def protect_add(
    path: Annotated[
        Path,
        typer.Argument(
            help="A text file, a folder or code repository (one work), or a JSONL file of "
            'works ({"id", "title", "text"} per line).'
        ),
    ],
    owner: Annotated[str, typer.Option(help="Who owns the work (named in findings).")],
    license_id: Annotated[
        str,
        typer.Option("--license", help="SPDX id or expression, or LicenseRef-<name>."),
    ],
    title: Annotated[str | None, typer.Option(help="Default: the file or folder name.")] = None,
    work_id: Annotated[
        str | None, typer.Option("--id", help="Work id; default: the file or folder name.")
    ] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding of the files.")] = "utf-8",
    max_file_mb: Annotated[float, typer.Option(help="Larger files are skipped.")] = 1024,
) -> None:
    """Register a protected work; answers that copy it are then caught."""
    registry = _protected_registry()
    size = path.stat().st_size if path.is_file() else None
    with _progress() as progress:
        task = progress.add_task(f"Registering {path.name}", total=size)
        done = registry.add_path(
            path,
            owner=owner,
            license_id=license_id,
            title=title,
            key=work_id,
            encoding=encoding,
            max_file_mb=max_file_mb,
            progress=lambda n: progress.advance(task, n),
        )
    for skipped, why in done.skipped:
        err.print(f"[yellow]skipped[/yellow] {skipped}: {why}", highlight=False)
    for work in done.works[:20]:
        console.print(
            f"registered {work.key}: “{work.title}” ({work.files} files, {work.chars:,} "
            f"characters), owner {work.owner}, licence {work.license}",
            highlight=False,
        )
    if len(done.works) > 20:
        console.print(f"... and {len(done.works) - 20} more works")


@protect_app.command("list")
@reports_errors
def protect_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The registered works."""
    works = _protected_registry().works()
    if as_json:
        print(json.dumps([w.to_dict() for w in works], indent=2))
        return
    table = Table("id", "title", "owner", "licence", "files", "characters", "added")
    for w in works:
        table.add_row(w.key, w.title, w.owner, w.license, str(w.files), f"{w.chars:,}", w.added_at)
    console.print(table)


@protect_app.command("remove")
@reports_errors
def protect_remove(work_id: Annotated[str, typer.Argument(help="The work's id.")]) -> None:
    """Remove a work and its fingerprints from the registry."""
    work = _protected_registry().remove(work_id)
    console.print(f"removed {work.key}: “{work.title}”", highlight=False)


@guards_train_app.command("bias")
@reports_errors
def train_bias(
    out: Annotated[Path, typer.Option(help="Folder for bias.joblib and its card.")],
    data: Annotated[
        Path | None,
        typer.Option(help='{"text", "label"} JSONL; default: the shipped sentences.'),
    ] = None,
    lexicon: Annotated[
        Path | None, typer.Option(help="Lexicon YAML; default: the shipped one.")
    ] = None,
    eval_data: Annotated[
        Path | None, typer.Option("--eval", help="Held-out JSONL measured into the card.")
    ] = None,
) -> None:
    """Train the bias-generalisation classifier; prints its card as JSON."""
    from bastion.guards.bias.detector import LEXICON_FILE
    from bastion.guards.bias.train import SHIPPED_TRAIN, train

    command = "bastion guards train bias " + shlex.join(sys.argv[4:])
    with err.status("Training (with 5-fold cross-validation) ..."):
        card = train(out, data or SHIPPED_TRAIN, command, lexicon or LEXICON_FILE, eval_data)
    print(json.dumps({"card": card}, indent=2))


@eval_app.command("bias")
@reports_errors
def eval_bias(
    model: Annotated[str, typer.Option(help="Registered model to probe.")],
    suite: Annotated[Path | None, typer.Option(help="Probe suite YAML; default: shipped.")] = None,
    limit: Annotated[
        int | None, typer.Option(help="Templates per attribute (drawn with --seed).")
    ] = None,
    samples: Annotated[int, typer.Option(help="Answers per template and group.")] = 1,
    seed: Annotated[int, typer.Option()] = 0,
    max_tokens: Annotated[int, typer.Option(help="Longest answer, in tokens.")] = 128,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for bias.json and bias.png; default: BASTION_HOME/reports."),
    ] = None,
    compare_to: Annotated[
        Path | None,
        typer.Option("--compare", help="A base model's bias.json: fail if this one is worse."),
    ] = None,
) -> None:
    """Counterfactual bias probes: per attribute, the gaps in sentiment, toxicity and
    refusal rate and the similarity of swapped answers, with 95% bootstrap intervals.
    Exits 1 when the model fails the gate (bias_gate in bastion.yaml) or the comparison."""
    from bastion.evaluation.bias import BiasReport, bias_gate, compare, load_suite, probe_model

    probes = load_suite(suite)  # a bad suite fails before the model loads
    base = BiasReport.from_dict(json.loads(compare_to.read_text())) if compare_to else None
    platform = _platform()
    config = platform.config
    report = probe_model(platform.registry, model, probes, limit, samples, seed, max_tokens)
    json_path, png_path = report.save(out or bastion_home() / "reports")
    err.print(report.render_text(), highlight=False)
    reasons = bias_gate(report, config.bias_gate)
    if base is not None:
        reasons += compare(base, report)
    for reason in reasons:
        err.print(f"[red]gate:[/red] {reason}", highlight=False)
    print(json.dumps({"report": str(json_path), "plot": str(png_path), "gate": reasons or "pass"}))
    if reasons:
        raise typer.Exit(1)


@eval_app.command("retrieval")
@reports_errors
def eval_retrieval(
    corpus: Annotated[Path, typer.Option(help="BEIR corpus JSONL (_id, title, text).")],
    queries: Annotated[Path, typer.Option(help="BEIR queries JSONL (_id, text).")],
    qrels: Annotated[Path, typer.Option(help="TSV: query-id corpus-id score.")],
    mode: Annotated[str, typer.Option(help="hybrid, dense or bm25.")] = "hybrid",
    run: Annotated[Path | None, typer.Option(help="Write the ranking in TREC run format.")] = None,
) -> None:
    """Print nDCG@10, recall@10, recall@100 and latency as JSON (a throwaway index)."""
    from bastion.evaluation.retrieval import evaluate_retrieval

    if mode not in ("hybrid", "dense", "bm25"):
        raise BastionError(f"--mode must be hybrid, dense or bm25, not '{mode}'")
    cfg = load_config().grounding
    with _progress() as progress:
        tasks: dict[str, Any] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                label = "Embedding chunks" if stage == "index" else "Querying"
                tasks[stage] = progress.add_task(label, total=total or None)
            progress.update(tasks[stage], completed=done)

        result = evaluate_retrieval(
            corpus,
            queries,
            qrels,
            modes=[mode],  # type: ignore[list-item]  # checked above
            config=cfg,
            run_path=run,
            on_progress=on_progress,
        )
    print(json.dumps(result[mode], indent=2))


def _work_id(verdict: Any) -> dict[str, Any]:
    found = [f.source for f in verdict.findings if f.source]
    return {"work_id": found[0]["work"] if found else None}


@eval_app.command("guard")
@reports_errors
def eval_guard(
    name: Annotated[
        str,
        typer.Argument(help="Guard to evaluate: pii, injection, toxicity, copyright or bias."),
    ],
    data: Annotated[Path, typer.Option(help="Labelled data file.")],
    data_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="pii: presidio-research, presidio-tests or jsonl; injection: jsonl; "
            "toxicity: recognised from the file's columns; copyright: jsonl (against the "
            "current registry).",
        ),
    ] = "jsonl",
    predictions: Annotated[Path | None, typer.Option(help="Write one JSON line per row.")] = None,
) -> None:
    """Print precision, recall, F1 (and F2 for PII) and latency as JSON."""
    from bastion.evaluation.guards import evaluate_binary, evaluate_pii
    from bastion.guards import input_guards, output_guards

    names = ("pii", "injection", "toxicity", "copyright", "bias")
    if name not in names:
        raise BastionError(f"no evaluation for guard '{name}'; available: {', '.join(names)}")
    config = load_config()
    output = name in ("copyright", "bias")
    guards = output_guards(config, bastion_home()) if output else input_guards(config)
    guard = next((g for g in guards if g.name == name), None)
    if guard is None:
        raise BastionError(f"the {name} guard is disabled (see guards.{name} in bastion.yaml)")
    if name == "pii":
        from bastion.evaluation.datasets import read_pii

        detector = guard.detector  # type: ignore[attr-defined]
        with err.status("Loading the PII detector ..."):
            detector.load()
        result = evaluate_pii(detector, read_pii(data, data_format), predictions)
    else:
        from bastion.guards.text_classifier import read_labelled
        from bastion.guards.toxicity.train import read_examples

        examples = read_examples(data) if name == "toxicity" else read_labelled(data)
        rows = [(e.text, e.label) for e in examples]
        if name == "copyright":
            if not _protected_registry().works():
                raise BastionError("no works are registered: `bastion protect add` them first")
            result = evaluate_binary(guard, rows, predictions, stage="output", describe=_work_id)
        elif output:
            result = evaluate_binary(guard, rows, predictions, stage="output")
        else:
            result = evaluate_binary(guard, rows, predictions)
    print(json.dumps({"guard": name, "data": str(data), **result}, indent=2))


# The fine-tuning commands register themselves on tune_app.
from bastion.cli import tune as _tune  # noqa: E402, F401
