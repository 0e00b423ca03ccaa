"""Copyright guard: precision and recall on excerpts of registered books, scan time per KB,
and the registry's build time and size.

Registry: the bodies (manifest offsets) of two thirds of ../shared/eval/copyright/
gutenberg_texts, registered as a JSONL file of works (`bastion protect add works.jsonl`);
the other third is held out: its excerpts are passages from books that were not registered.
Probes: seeded excerpts of 50-500 characters at four levels (verbatim; whitespace, quote
and punctuation changes; 5% and 10% of words replaced, deleted or inserted), each set in
300-900 characters of ordinary English (DialogSum summaries), as a model would quote; and
the same from the held-out books and the filler alone as negatives. Per level and length
bucket: recall, and precision against the negatives transformed the same way. Also the
Patronus model outputs (none of their books is registered: all must pass) and the
predictions scored by ../shared/scorers/score_binary.py. `--scale-gb X` adds a synthetic
registry of X GB (the books with their vocabulary remapped per work) to time build, size
and scans at scale.
The peer, on the same probes in the same run: datasketch MinHash LSH in memory.

Usage: python benchmarks/bench_copyright.py [--per 150] [--seed 7] [--scale-gb 0]
       [--no-peer] [--work DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich.progress import track

from bastion.copyright.matcher import Matcher
from bastion.copyright.normalise import normalise
from bastion.copyright.registry import ProtectedRegistry
from bastion.guards.base import GuardContext
from bastion.guards.copyright import CopyrightGuard
from bastion.observability import resident_memory_bytes

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
BOOKS = SHARED / "eval" / "copyright" / "gutenberg_texts"
PATRONUS = SHARED / "eval" / "copyright" / "patronus_copyright_evals"
LEVELS = ["verbatim", "whitespace_punct", "edit5", "edit10"]
BUCKETS = [(50, 160), (160, 300), (300, 500)]
CTX = GuardContext("bench", "bench", "output")


def load_books() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows = [json.loads(line) for line in (BOOKS / "manifest.jsonl").open()]
    books = []
    for n, m in enumerate(sorted(rows, key=lambda r: r["file"])):
        raw = (BOOKS / m["file"]).read_text(encoding="utf-8")
        books.append(
            {
                "id": f"pg{m['pg_id']}",
                "title": m["title"],
                "text": raw[m["body_start"] : m["body_end"]],
                "registered": n % 3 != 2,
            }
        )
    return [b for b in books if b["registered"]], [b for b in books if not b["registered"]]


def filler_pool() -> list[str]:
    path = SHARED / "eval" / "summarization" / "dialogsum_dev.jsonl"
    return [json.loads(line)["summary"] for line in path.open()]


def excerpt(rng: random.Random, text: str, lo: int, hi: int) -> str:
    """A passage of lo..hi characters starting and ending on word boundaries."""
    while True:
        length = rng.randint(lo, hi - 1)
        start = rng.randrange(1, len(text) - length - 1)
        while start < len(text) and not text[start - 1].isspace():
            start += 1
        end = start + length
        while end > start and not text[end].isspace():
            end -= 1
        passage = text[start:end]
        if len(passage) >= lo and sum(c.isalpha() for c in passage) > 0.6 * len(passage):
            return passage


def reflow(rng: random.Random, s: str) -> str:
    """Whitespace, quote and punctuation changes a model makes when it quotes."""
    s = re.sub(r"\s+", " ", s).strip()
    out = []
    for ch in s:
        r = rng.random()
        if ch in "\u201c\u201d":
            out.append('"')
        elif ch in "\u2018\u2019":
            out.append("'")
        elif ch == "\u2014":
            out.append(rng.choice([" -- ", "-", ", "]))
        elif ch == "," and r < 0.3:
            continue
        elif ch == ";" and r < 0.5:
            out.append(".")
        elif ch == " " and r < 0.05:
            out.append(rng.choice(["  ", "\n", "\n\n"]))
        else:
            out.append(ch)
    s = "".join(out)
    return s.lower() if rng.random() < 0.2 else s


def edit(rng: random.Random, s: str, share: float, vocab: list[str]) -> str:
    words = re.sub(r"\s+", " ", s).strip().split(" ")
    for _ in range(max(1, round(share * len(words)))):
        i = rng.randrange(len(words))
        op = rng.choice("rdi")
        if op == "r":
            words[i] = rng.choice(vocab)
        elif op == "d" and len(words) > 3:
            del words[i]
        else:
            words.insert(i, rng.choice(vocab))
    return " ".join(words)


def transform(rng: random.Random, level: str, s: str, vocab: list[str]) -> str:
    if level == "verbatim":
        return s
    if level == "whitespace_punct":
        return reflow(rng, s)
    return edit(rng, s, 0.05 if level == "edit5" else 0.10, vocab)


def make_probes(per: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    registered, held_out = load_books()
    fill = filler_pool()
    vocab = sorted({w.lower() for t in fill[:2000] for w in re.findall(r"[A-Za-z]{3,}", t)})
    probes = []
    for level in LEVELS:
        for lo, hi in BUCKETS:
            for label, pool in ((1, registered), (0, held_out)):
                for _ in range(per):
                    book = rng.choice(pool)
                    passage = transform(rng, level, excerpt(rng, book["text"], lo, hi), vocab)
                    before = " ".join(rng.sample(fill, rng.randint(1, 3)))
                    after = " ".join(rng.sample(fill, rng.randint(1, 3)))
                    text = f"{before}\n\n{passage}\n\n{after}"
                    probes.append(
                        {
                            "text": text,
                            "label": label,
                            "level": level,
                            "bucket": f"{lo}-{hi}",
                            "work": book["id"] if label else None,
                        }
                    )
    for _ in range(per):
        probes.append(
            {
                "text": " ".join(rng.sample(fill, rng.randint(3, 8))),
                "label": 0,
                "level": "filler",
                "bucket": "-",
                "work": None,
            }
        )
    return probes


def register(work: Path) -> tuple[ProtectedRegistry, dict[str, Any]]:
    registered, _ = load_books()
    works = work / "works.jsonl"
    works.write_text(
        "".join(json.dumps({k: b[k] for k in ("id", "title", "text")}) + "\n" for b in registered)
    )
    registry = ProtectedRegistry(work / "index.sqlite")
    start = time.perf_counter()
    registry.add_path(works, owner="Project Gutenberg", license_id="LicenseRef-PublicDomain")
    seconds = time.perf_counter() - start
    mb = sum(len(b["text"].encode()) for b in registered) / 1e6
    size = registry.size_bytes() / 1e6
    return registry, {
        "works": len(registered),
        "text_mb": round(mb, 2),
        "build_s": round(seconds, 2),
        "build_mb_per_s": round(mb / seconds, 2),
        "index_mb": round(size, 2),
        "index_per_text_mb": round(size / mb, 2),
    }


def scan_all(guard: CopyrightGuard, probes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for p in track(probes, description="Scanning probes", transient=True):
        start = time.perf_counter()
        verdict = guard.check(p["text"], CTX)
        ms = (time.perf_counter() - start) * 1000
        works = [f.source["work"] for f in verdict.findings if f.source]
        out.append(
            {
                "flagged": verdict.action != "allow",
                "work_id": works[0] if works else None,
                "score": verdict.score,
                "ms_per_kb": ms / (len(p["text"].encode()) / 1000),
            }
        )
    return out


def scores(probes: list[dict[str, Any]], preds: list[dict[str, Any]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for level in LEVELS:
        negatives = [
            q
            for p, q in zip(probes, preds, strict=True)
            if p["label"] == 0 and p["level"] in (level, "filler")
        ]
        row: dict[str, Any] = {}
        for lo, hi in BUCKETS:
            bucket = f"{lo}-{hi}"
            pos = [
                (p, q)
                for p, q in zip(probes, preds, strict=True)
                if p["label"] == 1 and p["level"] == level and p["bucket"] == bucket
            ]
            tp = sum(q["flagged"] and q["work_id"] == p["work"] for p, q in pos)
            fp = sum(q["flagged"] for q in negatives)
            row[bucket] = {
                "recall": round(tp / len(pos), 3),
                "precision": round(tp / (tp + fp), 3) if tp + fp else None,
                "n": len(pos),
            }
        long = [
            (p, q)
            for p, q in zip(probes, preds, strict=True)
            if p["label"] == 1 and p["level"] == level and p["bucket"] != "50-160"
        ]
        tp = sum(q["flagged"] and q["work_id"] == p["work"] for p, q in long)
        fp = sum(q["flagged"] for q in negatives)
        row["160+"] = {
            "recall": round(tp / len(long), 3),
            "precision": round(tp / (tp + fp), 3) if tp + fp else None,
            "false_positives": fp,
            "negatives": len(negatives),
        }
        table[level] = row
    return table


def patronus(guard: CopyrightGuard) -> dict[str, Any]:
    flagged = total = 0
    for path in sorted(PATRONUS.glob("*-results.csv")):
        with path.open(encoding="utf-8") as f:
            for row in csv.reader(f):
                if row[0] == "Prompt":
                    continue
                total += 1
                flagged += guard.check(row[1], CTX).action != "allow"
    return {"outputs": total, "flagged": flagged}


def score_binary(work: Path, probes: list[dict[str, Any]], preds: list[dict[str, Any]]) -> str:
    """The shared scorer on the verbatim-or-reflowed 160+ probes and all negatives."""
    keep = [
        i
        for i, p in enumerate(probes)
        if p["label"] == 0
        or (p["level"] in ("verbatim", "whitespace_punct") and p["bucket"] != "50-160")
    ]
    (work / "data.jsonl").write_text(
        "".join(
            json.dumps({"text": probes[i]["text"], "label": probes[i]["label"]}) + "\n"
            for i in keep
        )
    )
    (work / "pred.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "flagged": preds[i]["flagged"],
                    "score": preds[i]["score"],
                    "work_id": preds[i]["work_id"],
                }
            )
            + "\n"
            for i in keep
        )
    )
    scorer = SHARED / "scorers" / "score_binary.py"
    done = subprocess.run(
        [sys.executable, str(scorer), str(work / "data.jsonl"), str(work / "pred.jsonl")],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def scale(work: Path, gigabytes: float, probes: list[dict[str, Any]]) -> dict[str, Any]:
    """Add a synthetic registry of `gigabytes` and time build, size and scans against the
    whole of it. Each synthetic work is the registered books with every word replaced by
    another through a random one-to-one map of the vocabulary, drawn per work: English-like
    word frequencies and phrase structure, but shingles of its own (a shuffle of the same
    sentences would repeat every phrase in every work, which no real registry does)."""
    registered, _ = load_books()
    corpus = " ".join(b["text"] for b in registered)
    vocab = sorted({w.lower() for w in re.findall(r"[A-Za-z]+", corpus)})
    rng = random.Random(3)
    registry = ProtectedRegistry(work / "index.sqlite")
    target, added, n = gigabytes * 1e9, 0, 0
    start = time.perf_counter()
    while added < target:
        mapping = dict(zip(vocab, rng.sample(vocab, len(vocab)), strict=True))
        text = re.sub(r"[A-Za-z]+", lambda m, to=mapping: to[m.group().lower()], corpus)
        registry.add_text(
            f"synthetic-{n}",
            f"Synthetic {n}",
            text,
            owner="bench",
            license_id="LicenseRef-Synthetic",
        )
        added += len(text.encode())
        n += 1
        print(f"  synthetic: {added / 1e9:.2f} GB", file=sys.stderr)
    build = time.perf_counter() - start
    guard = CopyrightGuard(Matcher(registry))
    preds = scan_all(guard, probes)
    ms = sorted(q["ms_per_kb"] for q in preds)
    return {
        "scores_160plus": {lv: row["160+"] for lv, row in scores(probes, preds).items()},
        "synthetic_gb": round(added / 1e9, 2),
        "build_s": round(build, 1),
        "build_mb_per_s": round(added / 1e6 / build, 2),
        "index_gb": round(registry.size_bytes() / 1e9, 2),
        "scan_ms_per_kb_p50": round(statistics.median(ms), 3),
        "scan_ms_per_kb_p95": round(ms[int(0.95 * len(ms))], 3),
        "probes_timed": len(probes),
    }


def rss_mb() -> float:
    return resident_memory_bytes() / 1e6


def datasketch_peer(probes: list[dict[str, Any]]) -> dict[str, Any]:
    """The approach the issue names, as a peer: datasketch MinHash LSH in memory over
    50-word windows (stride 25) of the registered books, 3-word shingles, 128 permutations,
    Jaccard threshold 0.5; a probe is flagged when any of its windows (stride 5) finds one."""
    from datasketch import MinHash, MinHashLSH

    def signature(words: list[str]) -> MinHash:
        m = MinHash(num_perm=128, seed=1)
        m.update_batch([" ".join(words[i : i + 3]).encode() for i in range(len(words) - 2)])
        return m

    registered, _ = load_books()
    before = rss_mb()
    start = time.perf_counter()
    lsh = MinHashLSH(threshold=0.5, num_perm=128)
    for book in track(registered, description="datasketch peer: indexing", transient=True):
        words = normalise(book["text"]).split(" ")
        for at in range(0, max(1, len(words) - 49), 25):
            lsh.insert(f"{book['id']}:{at}", signature(words[at : at + 50]))
    build = time.perf_counter() - start
    memory = rss_mb() - before
    preds, ms = [], []
    for p in track(probes, description="datasketch peer: scanning", transient=True):
        start = time.perf_counter()
        words = normalise(p["text"]).split(" ")
        width = min(50, len(words))
        found: list[str] = []
        for at in range(0, max(1, len(words) - width + 1), 5):
            found += lsh.query(signature(words[at : at + width]))
        ms.append((time.perf_counter() - start) * 1000 / (len(p["text"].encode()) / 1000))
        work = Counter(k.split(":")[0] for k in found).most_common(1)
        preds.append({"flagged": bool(found), "work_id": work[0][0] if work else None})
    return {
        "build_s": round(build, 1),
        "memory_mb": round(memory, 1),
        "scores": scores(probes, preds),
        "scan_ms_per_kb_p50": round(statistics.median(ms), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per", type=int, default=150, help="probes per level, bucket, label")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scale-gb", type=float, default=0.0)
    parser.add_argument("--no-peer", dest="peer", action="store_false")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-copyright-"))
    work.mkdir(parents=True, exist_ok=True)
    registry, build = register(work)
    guard = CopyrightGuard(Matcher(registry))
    probes = make_probes(args.per, args.seed)
    scan_all(guard, probes[:50])  # warm the page cache
    preds = scan_all(guard, probes)
    ms = sorted(q["ms_per_kb"] for q in preds)
    result: dict[str, Any] = {
        "registry": build,
        "probes": len(probes),
        "scores": scores(probes, preds),
        "scan_ms_per_kb_p50": round(statistics.median(ms), 3),
        "scan_ms_per_kb_p95": round(ms[int(0.95 * len(ms))], 3),
        "patronus_outputs": patronus(guard),
        "score_binary_160plus_verbatim_and_reflowed": score_binary(work, probes, preds),
    }
    if args.peer:
        result["peer_datasketch_lsh"] = datasketch_peer(probes)
    if args.scale_gb:
        result["scale"] = scale(work, args.scale_gb, probes)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
