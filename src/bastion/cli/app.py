"""`bastion app`: list the registered applications and run one as a person."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.table import Table

from bastion.cli.common import _as, _platform, _progress, console, err, reports_errors
from bastion.errors import BadRequest

app_app = typer.Typer(
    help="Applications: Slack digests, segments, emails, replies.", no_args_is_help=True
)


@app_app.command("list")
@reports_errors
def app_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The registered apps and the input each takes."""
    from bastion.apps import app_specs

    specs = sorted(app_specs().items())
    if as_json:
        rows = [
            {
                "name": name,
                "description": spec.description,
                "input_schema": spec.input.model_json_schema(),
                "output_schema": spec.output.model_json_schema(),
            }
            for name, spec in specs
        ]
        print(json.dumps(rows, indent=2))
        return
    table = Table("app", "what it does", "input (--option VALUE)")
    for name, spec in specs:
        options = [
            f"--{field.replace('_', '-')}" + ("" if info.is_required() else " (optional)")
            for field, info in spec.input.model_fields.items()
        ]
        table.add_row(name, spec.description, "\n".join(options))
    console.print(table)


def _options(args: list[str]) -> dict[str, Any]:
    """`--some-field VALUE` pairs -> {"some_field": VALUE}; VALUE parsed as JSON when it
    is JSON (numbers, lists, true), else kept as text; a flag alone is true."""
    data: dict[str, Any] = {}
    i = 0
    while i < len(args):
        name = args[i]
        if not name.startswith("--") or len(name) < 3:
            raise BadRequest(f"expected an --option, got '{name}'; see `bastion app list`")
        if i + 1 < len(args) and not args[i + 1].startswith("--"):
            raw, i = args[i + 1], i + 2
            try:
                value: Any = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
        else:
            value, i = True, i + 1
        data[name[2:].replace("-", "_")] = value
    return data


@app_app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@reports_errors
def app_run(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The app (see `bastion app list`).")],
    as_user: Annotated[str, typer.Option("--as", help="Run as TENANT/USER (their access).")],
    output_format: Annotated[
        Literal["json", "markdown"], typer.Option("--format", help="json: the output schema.")
    ] = "markdown",
    model: Annotated[str | None, typer.Option(help="A registered model.")] = None,
    input_json: Annotated[
        str | None, typer.Option("--input", help="The whole input as JSON (or use --options).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Also write the output as JSON Lines (an email a line...)."),
    ] = None,
) -> None:
    """Run an app as a person: every model call goes through the guards and the audit.
    The app's input comes as --options (e.g. --channel general --since 2026-01-05) or
    --input JSON."""
    from bastion.apps import app_specs, execute, start_run

    data = _options(ctx.args)
    if input_json is not None:
        try:
            given = json.loads(input_json)
        except json.JSONDecodeError as exc:
            raise BadRequest(f"--input is not valid JSON: {exc}") from None
        if not isinstance(given, dict):
            raise BadRequest("--input must be a JSON object of the app's input fields")
        data = {**given, **data}
    platform = _platform()
    principal = _as(platform, as_user)
    with _progress() as progress:
        task = progress.add_task(f"{name} ...", total=None)

        def show(done: int, total: int | None, note: str) -> None:
            progress.update(task, completed=done, total=total, description=note or name)

        pending = start_run(platform, name, data, principal, model=model, on_progress=show)
        result = execute(pending)
    spec = app_specs()[name]
    if out is not None:
        rows = spec.jsonl(result.output) if spec.jsonl else [result.output.model_dump(mode="json")]
        from bastion.labelled.datasets import write_jsonl

        write_jsonl(out, rows)
        err.print(f"{len(rows)} line(s) written to {out}", highlight=False)
    if output_format == "json":
        print(result.output.model_dump_json(indent=2))
    else:
        console.print((spec.markdown or markdown)(result.output), highlight=False, markup=False)
    err.print(f"run {result.run_id}: {len(result.calls)} model call(s)", highlight=False)


def markdown(output: Any) -> str:
    """A readable rendering of any app's output: text fields as paragraphs, lists of
    items as bullets with their sources, the rest as values."""
    parts = []
    for field, value in output.model_dump(mode="json").items():
        title = field.replace("_", " ").capitalize()
        if isinstance(value, str):
            parts.append(f"## {title}\n\n{value}")
        elif isinstance(value, list):
            lines = [f"- {_item(v)}" for v in value] or ["- (none)"]
            parts.append(f"## {title}\n\n" + "\n".join(lines))
        else:
            parts.append(f"**{title}**: {json.dumps(value)}")
    return "\n\n".join(parts)


def _item(value: Any) -> str:
    if not isinstance(value, dict):
        return json.dumps(value) if not isinstance(value, str) else value
    text = str(value.get("text") or value.get("name") or json.dumps(value))
    extra = [f"{k}: {v}" for k, v in value.items() if k not in ("text", "sources") and v]
    sources = value.get("sources") or []
    cited = ", ".join(
        " ".join(str(v) for v in s.values()) if isinstance(s, dict) else str(s) for s in sources
    )
    return text + (f" ({'; '.join(extra)})" if extra else "") + (f" [{cited}]" if cited else "")
