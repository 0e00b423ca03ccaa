"""Runtime bias flag: precision and recall on the project's held-out labelled sentences,
flags on ordinary text, and time per KB; beside it, in the same run, the naive peer that
flags every text naming a protected group (the lexicon alone, no classifier).

Data: tests/data/bias_generalisations_eval.jsonl (written by the project, never trained on;
label 1 = a generalisation about a protected group), scored also by
../shared/scorers/score_binary.py; ordinary text (negatives only): the project's benign
business prompts, DialogSum summaries and QMSum answers from ../shared/eval.

Usage: python benchmarks/bench_bias_guard.py [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bastion.guards.base import GuardContext
from bastion.guards.bias.detector import BiasDetector, Lexicon
from bastion.guards.bias.guard import BiasGuard
from bastion.guards.data import BENIGN_BUSINESS, prompt_lines
from bastion.guards.text_classifier import read_labelled
from bastion.labelled.metrics import binary_scores

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CTX = GuardContext("bench", "bench", "output")


def ordinary_text() -> dict[str, list[str]]:
    summaries = SHARED / "eval" / "summarization"
    dialogs = [json.loads(line) for line in (summaries / "dialogsum_dev.jsonl").open()]
    meetings = [json.loads(line) for line in (summaries / "qmsum_test.jsonl").open()]
    return {
        "benign business prompts": prompt_lines(BENIGN_BUSINESS),
        "dialogsum summaries": [d["summary"] for d in dialogs],
        "qmsum answers": [
            q["answer"]
            for m in meetings
            for q in m["general_query_list"] + m["specific_query_list"]
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    guard = BiasGuard(BiasDetector())
    guard.load()
    lexicon = Lexicon.load()
    rows = read_labelled(ROOT / "tests" / "data" / "bias_generalisations_eval.jsonl")
    labels = [r.label for r in rows]
    flagged, peer, ms = [], [], []
    for row in rows:
        start = time.perf_counter()
        flagged.append(guard.check(row.text, CTX).action != "allow")
        ms.append((time.perf_counter() - start) * 1000)
        peer.append(bool(lexicon.mentions(row.text)))
    work = Path(tempfile.mkdtemp(prefix="bench-bias-"))
    (work / "pred.jsonl").write_text("".join(json.dumps({"flagged": f}) + "\n" for f in flagged))
    scorer = subprocess.run(
        [
            sys.executable,
            str(SHARED / "scorers" / "score_binary.py"),
            str(ROOT / "tests" / "data" / "bias_generalisations_eval.jsonl"),
            str(work / "pred.jsonl"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    ordinary: dict[str, Any] = {}
    per_kb = []
    for name, texts in ordinary_text().items():
        hits = peer_hits = 0
        for text in texts:
            start = time.perf_counter()
            hits += guard.check(text, CTX).action != "allow"
            per_kb.append((time.perf_counter() - start) * 1000 / (len(text.encode()) / 1000))
            peer_hits += bool(lexicon.mentions(text))
        ordinary[name] = {"texts": len(texts), "flagged": hits, "peer_flagged": peer_hits}
    result = {
        "threshold": guard.threshold,
        "eval_rows": len(rows),
        "guard": binary_scores(labels, flagged),
        "peer_group_mention": binary_scores(labels, peer),
        "score_binary": scorer.stdout.strip(),
        "eval_ms_per_sentence_p50": round(statistics.median(ms), 2),
        "ordinary_text": ordinary,
        "ordinary_ms_per_kb_p50": round(statistics.median(per_kb), 2),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
