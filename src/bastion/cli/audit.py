"""`bastion audit`: verify, show and export the audit trail."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bastion.cli.common import _platform, console, err, reports_errors

audit_app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)


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
