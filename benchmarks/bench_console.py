"""The console's audit page over a large trail: 100k records, served by `bastion serve`.

Fills the audit trail of a fresh home with N records (20 users, 4 apps, 3 models, some
blocked, flagged and redacted), signs in to the console over HTTP like a browser does, and
times each page view (the server's answer, over loopback) for the unfiltered first page,
filters by user, by guard verdict and by status, a page deep in the trail, the overview,
trust events and the review queue.
The peer, in the same run: the JSON API's `GET /v1/audit?limit=50` (the last 50 records).

Usage: python benchmarks/bench_console.py [--records 100000] [--repeats 30]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from bench_gateway import free_port, wait_ready

from bastion.audit import AuditEntry
from bastion.platform import Platform

CONFIG = (
    "models:\n  - {name: echo, backend: echo}\n  - {name: echo-b, backend: echo}\n"
    "  - {name: echo-c, backend: echo}\n"
    "logging: {level: WARNING}\n"
    "guards: {pii: {enabled: false}, injection: {enabled: false, canary: false},"
    " toxicity: {enabled: false}}\n"
)
APPS = ("chat", "service-reply", "slack-digest", "campaign-email")
MODELS = ("echo", "echo-b", "echo-c")


def entry(n: int) -> AuditEntry:
    action = (
        "block" if n % 50 == 0 else "flag" if n % 17 == 0 else "redact" if n % 7 == 0 else "allow"
    )
    return AuditEntry(
        trace_id=f"bench-{n}",
        tenant="acme" if n % 10 else "globex",
        user=f"user{n % 20}",
        role="user",
        key_id="k",
        app=APPS[n % 4],
        model=MODELS[n % 3],
        status="blocked" if action == "block" else "ok",
        prompt=[{"role": "user", "content": f"question number {n} about the refund policy"}],
        response=f"answer {n}",
        prompt_tokens=12,
        completion_tokens=30 + n % 40,
        latency_ms=200.0 + n % 300,
        verdicts=[
            {"guard": "pii", "stage": "input", "action": action, "score": 0.9, "findings": []}
        ],
    )


def fill(home: Path, records: int) -> float:
    """Append `records` through the real AuditLog from 8 threads (its group commit)."""
    platform_ = Platform.open(home)
    started = time.perf_counter()
    todo = iter(range(1, records + 1))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                n = next(todo, None)
            if n is None:
                return
            platform_.audit.append(entry(n))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    platform_.close()
    return seconds


def timed(http: httpx.Client, path: str, repeats: int) -> dict[str, float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        answer = http.get(path)
        times.append((time.perf_counter() - start) * 1000)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        (home / "bastion.yaml").write_text(CONFIG)
        fill_seconds = fill(home, args.records)
        env = {**os.environ, "BASTION_HOME": str(home)}
        bastion = str(Path(sys.executable).with_name("bastion"))
        key = subprocess.run(
            [bastion, "keys", "create", "--tenant", "acme", "--user", "admin", "--role", "admin",
             "--quiet"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        port = free_port()
        server = subprocess.Popen([bastion, "serve", "--port", str(port), "--no-preload"], env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(base + "/healthz", server)
            http = httpx.Client(base_url=base, timeout=60)
            form = http.get("/console/login").text
            csrf = re.search(r'name="csrf" value="([^"]+)"', form)
            assert csrf
            signed = http.post("/console/login", data={"api_key": key, "csrf": csrf.group(1)})
            assert signed.status_code in (200, 303), signed.text[:300]
            deep = args.records // 2
            pages = {
                "audit, first page": "/console/audit",
                "audit, one user": "/console/audit?user=user7",
                "audit, verdict block": "/console/audit?verdict=block",
                "audit, status blocked + app": "/console/audit?status=blocked&app=chat",
                "audit, a page half-way down": f"/console/audit?before={deep}",
                "audit record": f"/console/audit/bench-{deep + 1}",
                "overview, 7 days": "/console/?days=7",
                "trust events (scans the newest 5,000 guarded)": "/console/trust",
                "review queue": "/console/review",
            }
            results = {name: timed(http, path, args.repeats) for name, path in pages.items()}
            api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"})
            results["peer: GET /v1/audit?limit=50 (JSON)"] = timed(
                api, "/v1/audit?limit=50", args.repeats
            )
        finally:
            server.terminate()
            server.wait(30)
    print(
        json.dumps(
            {
                "benchmark": "console",
                "date": time.strftime("%Y-%m-%d"),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "records": args.records,
                "fill_seconds": round(fill_seconds, 1),
                "repeats": args.repeats,
                "pages": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
