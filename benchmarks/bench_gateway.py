"""Gateway overhead with a zero-latency (echo) backend, audit on, trust guards off.

Starts Bastion (`bastion serve`, SQLite in WAL mode) and the peer (a bare FastAPI echo
endpoint on the same uvicorn, see peer_app.py) as separate processes, then drives each
with the same asyncio load generator at 1, 8 and 32 concurrent clients. Reports
requests/s and p50/p99 latency for both, and Bastion's added latency (Bastion - peer).

Usage: python benchmarks/bench_gateway.py [--seconds 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
BODY = {
    "model": "echo",
    "messages": [{"role": "user", "content": "what is our refund policy for damaged goods"}],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def drive(url: str, key: str | None, clients: int, seconds: float) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as http:

        async def worker(stop_at: float, record: bool) -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                start = time.perf_counter()
                response = await http.post("/v1/chat/completions", json=BODY)
                elapsed = time.perf_counter() - start
                if response.status_code != 200:
                    errors += 1
                elif record:
                    latencies.append(elapsed)

        warm = time.perf_counter() + 1.0
        await asyncio.gather(*(worker(warm, False) for _ in range(clients)))
        start = time.perf_counter()
        await asyncio.gather(*(worker(start + seconds, True) for _ in range(clients)))
        wall = time.perf_counter() - start
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / wall,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
    }


def start_bastion(home: Path, port: int) -> subprocess.Popen[bytes]:
    (home / "bastion.yaml").write_text(
        "models:\n  - {name: echo, backend: echo, max_concurrency: 64, max_queue: 256}\n"
        "logging: {level: WARNING}\n"
        # The gateway's own cost: the trust guards are measured apart (bench_trust.py).
        "guards: {pii: {enabled: false}, injection: {enabled: false, canary: false},"
        " toxicity: {enabled: false}}\n"
    )
    env = {**os.environ, "BASTION_HOME": str(home)}
    bastion = str(Path(sys.executable).with_name("bastion"))
    proc = subprocess.Popen([bastion, "serve", "--port", str(port), "--no-preload"], env=env)
    wait_ready(f"http://127.0.0.1:{port}/healthz", proc)
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds; medians reported"
    )
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        b_port, p_port = free_port(), free_port()
        bastion = start_bastion(home, b_port)
        peer = subprocess.Popen([sys.executable, str(HERE / "peer_app.py"), str(p_port)])
        try:
            wait_ready(f"http://127.0.0.1:{p_port}/docs", peer)
            env = {**os.environ, "BASTION_HOME": str(home)}
            key = subprocess.run(
                [
                    str(Path(sys.executable).with_name("bastion")),
                    "keys",
                    "create",
                    "--tenant",
                    "bench",
                    "--user",
                    "load",
                    "--role",
                    "admin",
                    "--quiet",
                ],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            results: dict[str, dict[str, list[dict[str, float]]]] = {"bastion": {}, "peer": {}}
            for _ in range(args.rounds):
                for clients in args.clients:
                    for name, url, k in (
                        ("bastion", f"http://127.0.0.1:{b_port}", key),
                        ("peer", f"http://127.0.0.1:{p_port}", None),
                    ):
                        run = asyncio.run(drive(url, k, clients, args.seconds))
                        results[name].setdefault(str(clients), []).append(run)
            audit = subprocess.run(
                [str(Path(sys.executable).with_name("bastion")), "audit", "verify"],
                env=env,
                capture_output=True,
                text=True,
            ).stdout.strip()
        finally:
            bastion.terminate()
            peer.terminate()
            bastion.wait(10)
            peer.wait(10)
    summary = {}
    for clients in map(str, args.clients):
        row = {}
        for name in ("bastion", "peer"):
            runs = results[name][clients]
            row[name] = {
                key: statistics.median(r[key] for r in runs) for key in ("rps", "p50_ms", "p99_ms")
            }
            row[name]["errors"] = sum(r["errors"] for r in runs)
        row["added_p50_ms"] = row["bastion"]["p50_ms"] - row["peer"]["p50_ms"]
        row["added_p99_ms"] = row["bastion"]["p99_ms"] - row["peer"]["p99_ms"]
        summary[clients] = row
    print(
        json.dumps(
            {
                "benchmark": "gateway_overhead",
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                f"python {platform.python_version()}",
                "seconds_per_run": args.seconds,
                "rounds": args.rounds,
                "audit_verify": audit,
                "by_clients": summary,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
