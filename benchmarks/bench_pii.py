"""PII detection: Bastion's detector against Presidio's default analyzer (same spaCy model),
in the same process, alternating row by row so both see the same machine noise.

Scores the presidio-research set with ../shared/scorers/score_pii.py (the project's
scorer) and the Presidio recognizer test cases with bastion.evaluation (rows whose entity
types both detectors support). Prints one JSON object.

Usage: python benchmarks/bench_pii.py [--eval-dir ../shared/eval] [--scorers ../shared/scorers]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bastion.guards.pii.detector import SPACY_MODEL, PiiDetector
from bastion.labelled.datasets import read_pii
from bastion.labelled.metrics import span_scores

ROOT = Path(__file__).resolve().parents[1]


def presidio_default() -> Any:
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": SPACY_MODEL}],
        }
    )
    return AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])


def run(path: Path, fmt: str, peer: Any, ours: PiiDetector) -> dict[str, Any]:
    examples = read_pii(path, fmt)
    peer_types = set(peer.get_supported_entities("en"))
    rows, times, spans = [], {"peer": [], "bastion": []}, {"peer": [], "bastion": []}
    for ex in examples:
        wanted = ex.entity_types
        if wanted is not None and not (
            set(wanted) <= peer_types and set(wanted) <= set(ours.entities)
        ):
            continue
        rows.append(ex)
        start = time.perf_counter()
        found = peer.analyze(ex.text, language="en", entities=list(wanted) if wanted else None)
        times["peer"].append(time.perf_counter() - start)
        spans["peer"].append([(r.start, r.end) for r in found])
        start = time.perf_counter()
        mine = ours.detect(ex.text, wanted)
        times["bastion"].append(time.perf_counter() - start)
        spans["bastion"].append([(s.start, s.end) for s in mine])
    result: dict[str, Any] = {"rows": len(rows), "of": len(examples)}
    for name in ("bastion", "peer"):
        scores = span_scores([ex.spans for ex in rows], spans[name])
        scores["p50_ms"] = round(1000 * statistics.median(times[name]), 3)
        result[name] = scores
    result["spans"] = spans
    return result


def project_scorer(scorers: Path, gold: Path, predicted: list[list[tuple[int, int]]]) -> Any:
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for row in predicted:
            f.write(json.dumps({"spans": [{"start": s, "end": e} for s, e in row]}) + "\n")
    out = subprocess.run(
        [sys.executable, str(scorers / "score_pii.py"), str(gold), f.name],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--scorers", type=Path, default=ROOT.parent / "shared" / "scorers")
    args = parser.parse_args()
    peer, ours = presidio_default(), PiiDetector()
    ours.load()
    peer.analyze("Warm-up call for Jane Doe at jane@example.com", language="en")
    research = args.eval_dir / "pii" / "presidio_research_generated_small.json"
    tests = args.eval_dir / "pii" / "presidio_recognizer_test_cases.jsonl"
    out: dict[str, Any] = {"benchmark": "pii_detection"}
    r = run(research, "presidio-research", peer, ours)
    out["presidio_research"] = {
        "rows": r["rows"],
        "bastion": {
            "project_scorer": project_scorer(args.scorers, research, r["spans"]["bastion"]),
            "p50_ms": r["bastion"]["p50_ms"],
        },
        "peer_presidio_default": {
            "project_scorer": project_scorer(args.scorers, research, r["spans"]["peer"]),
            "p50_ms": r["peer"]["p50_ms"],
        },
    }
    t = run(tests, "presidio-tests", peer, ours)
    out["presidio_recognizer_tests"] = {
        "rows_both_support": t["rows"],
        "of": t["of"],
        "bastion": {k: v for k, v in t["bastion"].items() if k != "recall_by_type"},
        "peer_presidio_default": {k: v for k, v in t["peer"].items() if k != "recall_by_type"},
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
