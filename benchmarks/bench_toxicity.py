"""Toxicity and hate: Bastion's classifier against alt-profanity-check on the same rows.

- 5-fold cross-validation on the development data the shipped model is trained on
  (Davidson 2017 + HatemojiBuild train): F1 of the hateful class, and the false-positive
  rate on Davidson's "offensive" tweets (profanity that is not hate), by random rows and by
  origin (rows sharing a sentence kept in one fold: HatemojiBuild writes many variants of
  one sentence); and each of the two sources predicted by a model trained on the other;
- held out from training altogether: HatemojiBuild test (adversarial, emoji), the
  Stormfront test split (another domain), the project's functional cases
  (`functional_hate_cases.py`: hate against its contrasts) and two fresh sets of them
  (`data/hate_functional_fresh.jsonl` and `..._fresh2.jsonl`: about 60 other frames and
  twelve other groups each, written by sessions that saw neither the other sets nor the
  training templates; the first then guided training template v3, the second was scored
  once, after it), scored by the model
  (default: the shipped one) and, with --compare, by a second model in the same run;
- ordinary conversation, never trained on: every turn of DialogSum dev (everyday
  dialogues) and of QMSum test (meeting transcripts), one message each as the slack-digest
  reads them; no turn is hateful, so every flag is a false positive that withholds a
  message from a digest.
alt-profanity-check gives a probability of offensive language (threshold 0.5); Bastion's
figures are at its shipped threshold (guards.toxicity.threshold). The development CV folds
also train on the project's business prompts, as the shipped model does; --held-out-only
skips them.
Prints one JSON object. Usage: python benchmarks/bench_toxicity.py [--eval-dir ../shared/eval]
       [--model FILE --threshold T] [--compare FILE --compare-threshold T] [--held-out-only]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from functional_hate_cases import cases
from profanity_check import predict_prob

from bastion.apps.slack_digest.summaries import read_summaries
from bastion.guards.data import BENIGN_EDGY
from bastion.guards.injection.train import read_unlabelled
from bastion.guards.text_classifier import Example, origin_groups, out_of_fold_scores
from bastion.guards.toxicity.detector import SHIPPED_MODEL, ToxicityDetector
from bastion.guards.toxicity.plugin import ToxicitySettings
from bastion.guards.toxicity.train import fit, read_examples
from bastion.labelled.metrics import binary_scores

ROOT = Path(__file__).resolve().parents[1]


def scores_at(
    labels: list[int], probs: list[float], notes: list[str], threshold: float = 0.5
) -> dict[str, Any]:
    """Binary scores of the hateful class, plus false positives on profanity that is not hate."""
    flagged = [p >= threshold for p in probs]
    out: dict[str, Any] = {"hateful": sum(labels), **binary_scores(labels, flagged)}
    offensive = [f for f, n in zip(flagged, notes, strict=True) if n == "offensive"]
    if offensive:
        out["false_positive_rate_on_offensive_not_hateful"] = round(
            sum(offensive) / len(offensive), 4
        )
    return out


SHIPPED_THRESHOLD = ToxicitySettings().threshold


def compare(
    examples: list[Example], ours: list[float], threshold: float = SHIPPED_THRESHOLD
) -> dict[str, Any]:
    labels = [e.label for e in examples]
    notes = [e.note for e in examples]
    peer = [float(p) for p in predict_prob([e.text for e in examples])]
    return {
        "bastion": scores_at(labels, ours, notes, threshold),
        "peer_alt_profanity_check": scores_at(labels, peer, notes),
    }


def fresh_cases(name: str) -> list[tuple[str, int, str]]:
    rows = (ROOT / "benchmarks" / "data" / f"{name}.jsonl").read_text()
    return [(r["text"], r["label"], r["functionality"]) for r in map(json.loads, rows.splitlines())]


def functional_cases(
    detector: ToxicityDetector, threshold: float, rows: list[tuple[str, int, str]]
) -> dict[str, Any]:
    """Accuracy on hateful and on non-hateful cases, per functionality, and AUC."""
    from sklearn.metrics import roc_auc_score

    labels = [label for _, label, _ in rows]
    scored = {
        "bastion": ([detector.score(t) for t, _, _ in rows], threshold),
        "peer_alt_profanity_check": (
            [float(p) for p in predict_prob([t for t, _, _ in rows])],
            0.5,
        ),
    }
    out: dict[str, Any] = {"cases": len(rows), "hateful": sum(labels)}
    for who, (probs, threshold) in scored.items():
        right = [(p >= threshold) == bool(label) for p, label in zip(probs, labels, strict=True)]
        by_functionality: dict[str, list[bool]] = {}
        for (_, label, func), r in zip(rows, right, strict=True):
            by_functionality.setdefault(f"{'' if label else 'not '}hateful: {func}", []).append(r)
        out[who] = {
            "hateful_caught": round(
                statistics.mean(r for r, y in zip(right, labels, strict=True) if y), 4
            ),
            "not_hateful_passed": round(
                statistics.mean(r for r, y in zip(right, labels, strict=True) if not y), 4
            ),
            "auc": round(float(roc_auc_score(labels, probs)), 4),
            "by_functionality": {
                k: round(statistics.mean(v), 3) for k, v in sorted(by_functionality.items())
            },
        }
    return out


def conversation_false_positives(
    detector: ToxicityDetector, threshold: float, data: Path
) -> dict[str, Any]:
    turns = [m["text"] for case in read_summaries(data) for m in case.channel.messages]
    ours = [detector.score(t) >= threshold for t in turns]
    flagged = sorted((t for t, hit in zip(turns, ours, strict=True) if hit), key=len)
    return {
        "turns": len(turns),
        "bastion_false_positive_rate": round(sum(ours) / len(turns), 4),
        "peer_false_positive_rate": round(
            float(sum(p >= 0.5 for p in predict_prob(turns))) / len(turns), 4
        ),
        "bastion_flagged_shortest": flagged[:8],
    }


def held_out(detector: ToxicityDetector, threshold: float, tox: Path, eval_dir: Path) -> Any:
    """Every held-out measure of one model at one threshold."""
    result: dict[str, Any] = {}
    for name, examples in [
        ("hatemoji_test_held_out", read_examples(tox / "hatemojibuild" / "test.csv")),
        (
            "stormfront_test_held_out",
            read_examples(
                tox / "stormfront_degibert2018" / "stormfront_sentences.csv", split="test"
            ),
        ),
    ]:
        result[name] = compare(examples, [detector.score(e.text) for e in examples], threshold)
    result["functional_cases_held_out"] = functional_cases(detector, threshold, cases())
    for name in ("hate_functional_fresh", "hate_functional_fresh2"):
        result[f"{name}_held_out"] = functional_cases(detector, threshold, fresh_cases(name))
    edgy = [e.text for e in read_unlabelled(BENIGN_EDGY, 0)]
    result["project_edgy_prompts"] = {
        "rows": len(edgy),
        "bastion_false_positives": sum(detector.score(t) >= threshold for t in edgy),
        "peer_false_positives": int(sum(p >= 0.5 for p in predict_prob(edgy))),
    }
    result["ordinary_conversation_held_out"] = {
        data.stem: conversation_false_positives(detector, threshold, data)
        for data in (eval_dir / "summarization").glob("*.jsonl")
    }
    samples = {
        "hateful": "You people are all the same, go back to where you came from. " * 4,
        "ordinary": "Please move the budget review to Thursday and send the slides. " * 4,
    }
    for name, text in samples.items():
        detector.score(text)
        times = []
        for _ in range(100):
            start = time.perf_counter()
            detector.score(text)
            times.append(time.perf_counter() - start)
        result[f"p50_ms_250_chars_{name}"] = round(1000 * statistics.median(times), 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--model", type=Path, default=SHIPPED_MODEL)
    parser.add_argument("--threshold", type=float, default=SHIPPED_THRESHOLD)
    parser.add_argument("--compare", type=Path, default=None)
    parser.add_argument("--compare-threshold", type=float, default=0.55)
    parser.add_argument("--held-out-only", action="store_true")
    args = parser.parse_args()
    tox = args.eval_dir / "toxicity"
    development = read_examples(tox / "davidson2017" / "labeled_data.csv") + read_examples(
        tox / "hatemojibuild" / "train.csv"
    )
    result: dict[str, Any] = {"benchmark": "toxicity"}
    if not args.held_out_only:
        result["cross_validated_development"] = compare(
            development, out_of_fold_scores(development, fit)
        )
        result["cross_validated_development_by_origin"] = compare(
            development, out_of_fold_scores(development, fit, groups=origin_groups(development))
        )
        result["each_source_trained_on_the_other"] = {
            source: compare(
                held, [float(p) for p in fit(rest).predict_proba([e.text for e in held])[:, 1]]
            )
            for source in sorted({e.source for e in development})
            for held, rest in [
                (
                    [e for e in development if e.source == source],
                    [e for e in development if e.source != source],
                )
            ]
        }
    result["model"] = {"path": str(args.model), "threshold": args.threshold}
    result["held_out"] = held_out(ToxicityDetector(args.model), args.threshold, tox, args.eval_dir)
    if args.compare is not None:
        result["compared"] = {"path": str(args.compare), "threshold": args.compare_threshold}
        result["compared_held_out"] = held_out(
            ToxicityDetector(args.compare), args.compare_threshold, tox, args.eval_dir
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
