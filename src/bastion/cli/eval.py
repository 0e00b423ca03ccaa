"""`bastion eval`: bias probes of a model, retrieval quality, and guards on labelled data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from bastion.cli.common import _platform, _progress, _protected_registry, err, reports_errors
from bastion.config import bastion_home, load_config
from bastion.errors import BastionError

eval_app = typer.Typer(help="Evaluate guards and models on labelled data.", no_args_is_help=True)


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
    from bastion.guards import build_chain

    names = ("pii", "injection", "toxicity", "copyright", "bias")
    if name not in names:
        raise BastionError(f"no evaluation for guard '{name}'; available: {', '.join(names)}")
    config = load_config()
    output = name in ("copyright", "bias")
    chain = build_chain(config.guards, config.apps, bastion_home())
    guards = chain.output if output else chain.input
    guard = next((g for g in guards if g.name == name), None)
    if guard is None:
        raise BastionError(f"the {name} guard is disabled (see guards.{name} in bastion.yaml)")
    if name == "pii":
        from bastion.labelled.datasets import read_pii

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


@eval_app.command("groundedness")
@reports_errors
def eval_groundedness(
    data: Annotated[
        Path,
        typer.Option(
            help='{"claim", "passage"} JSONL; a "label" (supported/contradicted) is scored.'
        ),
    ],
    predictions: Annotated[
        Path, typer.Option(help='Write one {"score", "supported"} JSON line per row, in order.')
    ],
    nli_model: Annotated[
        Path | None,
        typer.Option(help="NLI model folder; default: grounding.nli_model in bastion.yaml."),
    ] = None,
) -> None:
    """Judge each claim against its passage as the groundedness check judges an answer
    sentence: "score" is the similarity support (scaled down by the probability of a
    contradiction when an NLI model is set), "supported" the check's verdict. Prints a
    summary as JSON, with ROC AUC and precision/recall when every row has a label."""
    from bastion.evaluation.groundedness import evaluate_groundedness, read_claims
    from bastion.grounding.groundedness import GroundednessScorer
    from bastion.grounding.nli import load_nli

    rows = read_claims(data)
    folder = nli_model or load_config().grounding.nli_folder(bastion_home())
    with err.status("Loading the models ..."):
        scorer = GroundednessScorer(nli=load_nli(folder) if folder else None)
        scorer.embedder.load()
    with _progress() as progress:
        task = progress.add_task("Judging claims", total=len(rows))
        result = evaluate_groundedness(rows, predictions, scorer, lambda: progress.advance(task))
    summary = {"data": str(data), "predictions": str(predictions), "nli_model": folder}
    print(json.dumps({**summary, **result}, indent=2, default=str))


@eval_app.command("app")
@reports_errors
def eval_app_cases(
    name: Annotated[str, typer.Argument(help="The app (see `bastion app list`).")],
    data: Annotated[Path, typer.Option(help='JSONL: {"id", "input": {...}, "expected": {...}}.')],
    as_user: Annotated[str, typer.Option("--as", help="Run the cases as TENANT/USER.")],
    model: Annotated[str | None, typer.Option(help="A registered model.")] = None,
    predictions: Annotated[
        Path | None, typer.Option(help="Write each case's output, scores and run id (JSONL).")
    ] = None,
) -> None:
    """Run an app over labelled cases through the pipeline; print its scores as JSON."""
    from bastion.apps.evaluation import evaluate_app, read_cases

    cases = read_cases(data)
    platform = _platform()
    principal = platform.access.principal(as_user)
    with _progress() as progress:
        task = progress.add_task(f"{name} cases", total=len(cases))
        result = evaluate_app(
            platform,
            name,
            cases,
            principal,
            model=model,
            predictions=predictions,
            on_case=lambda: progress.advance(task),
        )
    print(json.dumps(result, indent=2))
