"""Copyright guard: precision and recall on excerpts of registered books, scan time per KB,
and the registry's build time and size.

Registry: the first 70% (cut at a word) of the bodies (manifest offsets) of two thirds of
../shared/eval/copyright/gutenberg_texts, registered as a JSONL file of works (`bastion
protect add works.jsonl`). The other third is held out: its excerpts are passages from
books that were not registered. The last 30% of each registered book is never registered
either: its excerpts are the same-book negatives (same names, vocabulary and style).
Probes: seeded excerpts in four length buckets (50-150, 150-200, 200-300, 300-500 chars) at
six levels: verbatim; whitespace, quote and punctuation changes; 5% and 10% of words
edited (each edit one word replaced, dropped or inserted); `reorder`, the excerpt's
sentences shuffled (clauses when it holds one sentence) with no word changed; and
`reorder_edit10`, shuffled and then 10% of words edited. Each is set in 300-900 characters
of ordinary English (DialogSum summaries), as a model would quote; the same from the
held-out books, from the unregistered part of the registered books, and the filler alone
are the negatives. Per level and length bucket: recall, and precision against each negative
set transformed the same way (held-out books with the filler; same-book unregistered text),
with the false positives counted. Also the Patronus model outputs (none of their books is
registered: all must pass) and the predictions scored by ../shared/scorers/score_binary.py.
`--scale-gb X` adds a synthetic registry of X GB (the books with their vocabulary remapped
per work) to time build, size and scans at scale.
The peer, on the same probes in the same run: datasketch MinHash LSH in memory.
`--compare FILE` scores another matcher module (say a saved copy of an earlier matcher.py)
on the same registry and probes, its scans timed interleaved with this one's.

Usage: python benchmarks/bench_copyright.py [--per 150] [--seed 7] [--scale-gb 0]
       [--no-peer] [--compare FILE] [--work DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
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
LEVELS = ["verbatim", "whitespace_punct", "edit5", "edit10", "reorder", "reorder_edit10"]
BUCKETS = [(50, 150), (150, 200), (200, 300), (300, 500)]
LONG = "150+"  # the buckets from 150 characters up, together
REGISTERED_SHARE = 0.7  # of each registered book's body; the rest is same-book negatives
NEGATIVES = {"held_out": "held-out books", "same_book": "registered books' unregistered part"}
CTX = GuardContext("bench", "bench", "output")


def load_books() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The registered books, whose `text` is the part registered and `unregistered` the
    rest of the body, and the held-out books (`text` their whole body)."""
    rows = [json.loads(line) for line in (BOOKS / "manifest.jsonl").open()]
    books = []
    for n, m in enumerate(sorted(rows, key=lambda r: r["file"])):
        raw = (BOOKS / m["file"]).read_text(encoding="utf-8")
        body = raw[m["body_start"] : m["body_end"]]
        registered = n % 3 != 2
        cut = len(body)
        if registered:
            cut = int(REGISTERED_SHARE * len(body))
            while cut < len(body) and not body[cut].isspace():
                cut += 1
        books.append(
            {
                "id": f"pg{m['pg_id']}",
                "title": m["title"],
                "text": body[:cut],
                "unregistered": body[cut:],
                "registered": registered,
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


_SENTENCE_END = re.compile(r"[.!?][\"'\u201d\u2019)\]]*\s+")
_CLAUSE_END = re.compile(r"[,;:\u2014][\"'\u201d\u2019)\]]*\s*")


def reorder(rng: random.Random, s: str) -> str:
    """The passage's sentences in another order (its clauses when it is one sentence; its
    two halves when it is one clause); no word is changed."""
    s = re.sub(r"\s+", " ", s).strip()
    pieces: list[str] = []
    for boundary in (_SENTENCE_END, _CLAUSE_END):
        cuts = [m.end() for m in boundary.finditer(s) if 0 < m.end() < len(s)]
        pieces = [s[a:b].strip() for a, b in zip([0, *cuts], [*cuts, len(s)], strict=True)]
        pieces = [p for p in pieces if p]
        if len(pieces) >= 2:
            break
    if len(pieces) < 2:
        words = s.split(" ")
        pieces = [" ".join(words[: len(words) // 2]), " ".join(words[len(words) // 2 :])]
    order = list(range(len(pieces)))
    while order == sorted(order):
        rng.shuffle(order)
    return " ".join(pieces[i] for i in order)


def transform(rng: random.Random, level: str, s: str, vocab: list[str]) -> str:
    if level == "verbatim":
        return s
    if level == "whitespace_punct":
        return reflow(rng, s)
    if level == "reorder":
        return reorder(rng, s)
    if level == "reorder_edit10":
        return edit(rng, reorder(rng, s), 0.10, vocab)
    return edit(rng, s, 0.05 if level == "edit5" else 0.10, vocab)


def make_probes(per: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    registered, held_out = load_books()
    fill = filler_pool()
    vocab = sorted({w.lower() for t in fill[:2000] for w in re.findall(r"[A-Za-z]{3,}", t)})
    pools = (
        ("registered", 1, registered, "text"),
        ("held_out", 0, held_out, "text"),
        ("same_book", 0, registered, "unregistered"),
    )
    probes = []
    for level in LEVELS:
        for lo, hi in BUCKETS:
            for name, label, pool, part in pools:
                for _ in range(per):
                    book = rng.choice(pool)
                    passage = transform(rng, level, excerpt(rng, book[part], lo, hi), vocab)
                    before = " ".join(rng.sample(fill, rng.randint(1, 3)))
                    after = " ".join(rng.sample(fill, rng.randint(1, 3)))
                    text = f"{before}\n\n{passage}\n\n{after}"
                    probes.append(
                        {
                            "text": text,
                            "label": label,
                            "set": name,
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
                "set": "held_out",
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


def check(guard: CopyrightGuard, text: str) -> dict[str, Any]:
    start = time.perf_counter()
    verdict = guard.check(text, CTX)
    ms = (time.perf_counter() - start) * 1000
    works = [f.source["work"] for f in verdict.findings if f.source]
    return {
        "flagged": verdict.action != "allow",
        "work_id": works[0] if works else None,
        "score": verdict.score,
        "ms_per_kb": ms / (len(text.encode()) / 1000),
    }


def scan_all(guard: CopyrightGuard, probes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [check(guard, p["text"]) for p in track(probes, "Scanning probes", transient=True)]


def scan_side_by_side(
    guards: list[CopyrightGuard], probes: list[dict[str, Any]]
) -> list[list[dict[str, Any]]]:
    """Each guard's predictions; the guards take turns on each probe (and which goes first
    alternates), so a busy machine slows them alike."""
    out: list[list[dict[str, Any]]] = [[] for _ in guards]
    for n, p in enumerate(track(probes, "Scanning probes", transient=True)):
        order = range(len(guards)) if n % 2 == 0 else reversed(range(len(guards)))
        for i in order:
            out[i].append(check(guards[i], p["text"]))
    return out


def _cell(
    pos: list[tuple[dict[str, Any], dict[str, Any]]], negatives: dict[str, list[bool]]
) -> dict[str, Any]:
    """Recall on the positives; precision against each negative set (false positives and
    how many negatives)."""
    tp = sum(q["flagged"] and q["work_id"] == p["work"] for p, q in pos)
    cell: dict[str, Any] = {"recall": round(tp / len(pos), 3) if pos else None, "n": len(pos)}
    for name, flags in negatives.items():
        fp = sum(flags)
        cell[f"precision_{name}"] = round(tp / (tp + fp), 3) if tp + fp else None
        cell[f"fp_{name}"] = f"{fp}/{len(flags)}"
    return cell


def scores(probes: list[dict[str, Any]], preds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per level: per bucket and for the buckets from 150 characters up, recall and the
    precision against the held-out negatives (with the filler) and the same-book ones.
    A bucket's precision counts the false positives of its own bucket; the 150+ row's, all
    of the level's."""
    rows = list(zip(probes, preds, strict=True))
    table: dict[str, Any] = {}
    for level in LEVELS:

        def flags(name: str, buckets: set[str], level: str = level) -> list[bool]:
            levels = (level, "filler") if name == "held_out" else (level,)
            return [
                q["flagged"]
                for p, q in rows
                if p["label"] == 0
                and p["set"] == name
                and p["level"] in levels
                and (p["bucket"] in buckets or p["level"] == "filler")
            ]

        row: dict[str, Any] = {}
        names = [f"{lo}-{hi}" for lo, hi in BUCKETS]
        for bucket in names:
            pos = [
                (p, q)
                for p, q in rows
                if p["label"] == 1 and p["level"] == level and p["bucket"] == bucket
            ]
            row[bucket] = _cell(pos, {n: flags(n, {bucket}) for n in NEGATIVES})
        long = {b for b in names if int(b.split("-")[0]) >= 150}
        pos = [
            (p, q)
            for p, q in rows
            if p["label"] == 1 and p["level"] == level and p["bucket"] in long
        ]
        row[LONG] = _cell(pos, {n: flags(n, set(names)) for n in NEGATIVES})
        table[level] = row
    return table


def summary(table: dict[str, Any]) -> dict[str, str]:
    """One line per level: 150+ recall, precision against held-out and same-book text."""
    return {
        level: "recall {recall}  precision held-out {precision_held_out} ({fp_held_out} fp)"
        "  same-book {precision_same_book} ({fp_same_book} fp)".format(**row[LONG])
        for level, row in table.items()
    }


def load_matcher(path: Path) -> type[Matcher]:
    """The `Matcher` class of a matcher module given by file path."""
    spec = importlib.util.spec_from_file_location(f"compare_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    found: type[Matcher] = module.Matcher
    return found


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
    """The shared scorer on the verbatim-or-reflowed 150+ probes and all negatives."""
    keep = [
        i
        for i, p in enumerate(probes)
        if p["label"] == 0
        or (p["level"] in ("verbatim", "whitespace_punct") and p["bucket"] != "50-150")
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

        def remap(m: re.Match[str], to: dict[str, str] = mapping) -> str:
            return to[m.group().lower()]

        text = re.sub(r"[A-Za-z]+", remap, corpus)
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
        "scores_150plus": {lv: row[LONG] for lv, row in scores(probes, preds).items()},
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
    table = scores(probes, preds)
    return {
        "build_s": round(build, 1),
        "memory_mb": round(memory, 1),
        "summary_150plus": summary(table),
        "scores": table,
        "scan_ms_per_kb_p50": round(statistics.median(ms), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per", type=int, default=150, help="probes per level, bucket, label")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scale-gb", type=float, default=0.0)
    parser.add_argument("--no-peer", dest="peer", action="store_false")
    parser.add_argument(
        "--compare", type=Path, default=None, help="another matcher.py to score side by side"
    )
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-copyright-"))
    work.mkdir(parents=True, exist_ok=True)
    registry, build = register(work)
    guards = [CopyrightGuard(Matcher(registry))]
    if args.compare:
        guards.append(CopyrightGuard(load_matcher(args.compare)(registry)))
    probes = make_probes(args.per, args.seed)
    for guard in guards:
        scan_all(guard, probes[:50])  # warm the page cache
    preds, *others = scan_side_by_side(guards, probes)
    ms = sorted(q["ms_per_kb"] for q in preds)
    table = scores(probes, preds)
    result: dict[str, Any] = {
        "registry": build,
        "probes": len(probes),
        "summary_150plus": summary(table),
        "scores": table,
        "scan_ms_per_kb_p50": round(statistics.median(ms), 3),
        "scan_ms_per_kb_p95": round(ms[int(0.95 * len(ms))], 3),
        "patronus_outputs": patronus(guards[0]),
        "score_binary_150plus_verbatim_and_reflowed": score_binary(work, probes, preds),
    }
    if args.compare:
        ms = sorted(q["ms_per_kb"] for q in others[0])
        table = scores(probes, others[0])
        result["compare"] = {
            "matcher": str(args.compare),
            "summary_150plus": summary(table),
            "scores": table,
            "scan_ms_per_kb_p50": round(statistics.median(ms), 3),
            "scan_ms_per_kb_p95": round(ms[int(0.95 * len(ms))], 3),
            "patronus_outputs": patronus(guards[1]),
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
