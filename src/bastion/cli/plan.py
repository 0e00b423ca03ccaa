"""`bastion plan`: the hardware a model needs for a request rate and a latency target."""

from __future__ import annotations

import json
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from bastion.cli.common import _platform, console, err, reports_errors
from bastion.config import load_config
from bastion.errors import BadRequest


@reports_errors
def plan(
    qps: Annotated[float, typer.Option(help="Requests per second to serve.")],
    p95_ms: Annotated[float, typer.Option("--p95-ms", help="Latency target per request.")],
    model: Annotated[
        str | None, typer.Option(help="A registered model (its GGUF or weights folder).")
    ] = None,
    weights: Annotated[
        Path | None, typer.Option(help="A .gguf file or Hugging Face folder, unregistered.")
    ] = None,
    hardware: Annotated[
        str | None,
        typer.Option(help="Comma-separated names from the table, or this-machine (probed)."),
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            help="Weights as served: bf16, fp16, fp8, int8, int4 or stored (default: bf16 on "
            "GPUs, stored on this machine, which serves the file through llama.cpp)."
        ),
    ] = None,
    prompt_tokens: Annotated[int | None, typer.Option(help="Prompt length per request.")] = None,
    answer_tokens: Annotated[int | None, typer.Option(help="Answer length per request.")] = None,
    from_audit: Annotated[
        bool, typer.Option(help="Take the lengths (p95) from the model's audited traffic.")
    ] = False,
    since: Annotated[
        str | None, typer.Option(help="With --from-audit: ISO date (default: 7 days ago).")
    ] = None,
    price: Annotated[
        list[str] | None,
        typer.Option(help="NAME=USD per device-hour, over capacity.prices and the table."),
    ] = None,
    output: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Estimate, per GPU type (or this machine), the weights' and KV cache's memory, decode
    and prefill speed, the sequences that fit, replicas and monthly cost for the target."""
    from bastion.capacity import PlanRequest, capacity_plan
    from bastion.capacity.hardware import THIS_MACHINE
    from bastion.models.backends import weights_path

    if (model is None) == (weights is None):
        raise BadRequest("give --model NAME (registered) or --weights PATH, one of them")
    if output not in ("table", "json"):
        raise BadRequest("--format must be table or json")
    if from_audit and model is None:
        raise BadRequest("--from-audit reads a registered model's traffic: give --model")
    request = PlanRequest(
        qps=qps,
        p95_ms=p95_ms,
        hardware=hardware.split(",") if hardware else None,
        precision=precision,
        prompt_tokens=prompt_tokens,
        answer_tokens=answer_tokens,
        audit_since=_since(since) if from_audit else None,
        prices={**load_config().capacity.prices, **_prices(price or [])},
    )
    probing = THIS_MACHINE in (request.hardware or [])
    with err.status("Timing llama.cpp on slices of the model ...") if probing else nullcontext():
        if model is not None:
            platform = _platform()
            try:
                config = platform.registry.config(model)
                path = weights_path(config)
                result = capacity_plan(
                    model, path, request, platform.audit, token_price=config.price
                )
            finally:
                platform.close()
        else:
            assert weights is not None
            result = capacity_plan(str(weights), weights, request)
    if output == "json":
        print(json.dumps(result, indent=2))
        return
    _print_table(result)


def _since(since: str | None) -> datetime:
    if since is None:
        return datetime.now(UTC) - timedelta(days=7)
    try:
        return datetime.fromisoformat(since).replace(tzinfo=UTC)
    except ValueError:
        raise BadRequest(f"--since {since!r} is not an ISO date such as 2026-12-01") from None


def _prices(given: list[str]) -> dict[str, float]:
    prices = {}
    for item in given:
        name, _, value = item.partition("=")
        try:
            prices[name.strip()] = float(value)
        except ValueError:
            raise BadRequest(
                f"--price {item!r}: write NAME=USD, e.g. nvidia-l4-24gb=0.45"
            ) from None
    return prices


def _print_table(result: dict[str, Any]) -> None:
    arch, traffic = result["architecture"], result["traffic"]
    console.print(
        f"[bold]{result['model']}[/bold]: {arch['parameters'] / 1e9:.2f}B parameters, "
        f"{arch['layers']} layers, {arch['kv_heads']} KV heads x {arch['head_dim']} "
        f"({arch['stored_as']}); {traffic['prompt_tokens']} prompt + "
        f"{traffic['answer_tokens']} answer tokens, {traffic['qps']} requests/s within "
        f"{traffic['p95_ms']:.0f} ms"
    )
    table = Table(
        "hardware", "GPUs", "weights GB", "engine GB", "KV MB/seq", "fit seqs", "decode tok/s",
        "batch", "latency ms", "replicas", "per month", "per 1k req",
    )  # fmt: skip
    notes = []
    for row in result["hardware"]:
        table.add_row(
            row["name"],
            str(row["devices_per_replica"] or "-"),
            f"{row['weights_gb']:.2f}",
            f"{row['engine_memory_gb']:.2f}",
            f"{row['kv_cache_gb_per_sequence'] * 1000:.1f}",
            f"{row['max_concurrent_sequences']:,}",
            f"{row['decode_tokens_per_s']:,.0f}",
            str(row["batch"]),
            "-" if row["request_latency_ms"] is None else f"{row['request_latency_ms']:,.0f}",
            "-" if row["replicas"] is None else str(row["replicas"]),
            "-" if row["monthly_cost"] is None else f"${row['monthly_cost']:,.0f}",
            "-" if row["cost_per_1k_requests"] is None else f"${row['cost_per_1k_requests']:.4f}",
        )
        notes.append(f"{row['name']}: {row['note']}")
    console.print(table)
    best = result["recommended"]
    if best:
        cost = "" if best["monthly_cost"] is None else f", ${best['monthly_cost']:,.0f} a month"
        notes.append(
            f"recommended: {best['name']}, {best['replicas']} x {best['devices_per_replica']} "
            f"device(s){cost} (the cheapest that meets the target)"
        )
    api = result["priced_per_token"]
    if api:
        notes.append(
            f"priced per token (the model's price): ${api['cost_per_1k_requests']:.4f} per 1k "
            f"requests, ${api['monthly_cost']:,.0f} a month at this rate"
        )
    console.print("\n".join(notes), highlight=False)
