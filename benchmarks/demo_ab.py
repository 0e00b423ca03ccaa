"""End-to-end A/B demo on the embedded model: two prompt templates, simulated users who
rate answers through the real HTTP API, and the report.

Arm `a` keeps a plain helpful-assistant prompt; arm `b` asks for one short sentence. The
simulated users prefer short, direct answers (rating 5 at 25 words or fewer, 4 up to 45,
else 2, plus seeded noise), so the report should favour `b` once enough ratings are in.
Every request goes through the server as an OpenAI client would send it; every rating
through POST /v1/feedback.

Usage: python benchmarks/demo_ab.py [--users 30] [--questions 2] [--html ab-report.html]
Prints the report as JSON (and writes the HTML page with plots when asked).
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
import yaml

from bastion.config import load_config
from bastion.experiments.report import render_html
from bastion.platform import Platform
from bastion.server.app import create_app

QUESTIONS = [
    "How do I reset my password?",
    "What is a firewall?",
    "Why is my laptop slow?",
    "How should I name files on a shared drive?",
    "What does VPN stand for?",
    "How do I write a polite reminder email?",
]
CONFIG = {
    "models": [{"name": "smollm2-135m-instruct", "backend": "embedded", "threads": 2}],
    "apps": [{"name": "helpdesk", "system_prompt": "You are a helpful IT helpdesk assistant."}],
    "access": {"policies": {"user": {"models": ["*"], "apps": ["helpdesk"]}}},
    "experiments": [
        {
            "name": "helpdesk-tone",
            "tenant": "acme",
            "app": "helpdesk",
            "unit": "user",
            "primary_metric": "feedback_score",
            "minimum_effect": 0.1,
            "guardrails": [{"metric": "error_rate", "max_worsening": 0.05}],
            "variants": [
                {"name": "a", "system_prompt": "You are a helpful IT helpdesk assistant."},
                {
                    "name": "b",
                    "system_prompt": "You are an IT helpdesk assistant. Answer in one short, "
                    "direct sentence.",
                },
            ],
        }
    ],
}


def rating_for(answer: str, rng: random.Random) -> int:
    words = len(answer.split())
    base = 5 if words <= 25 else 4 if words <= 45 else 2
    return max(1, min(5, base + rng.choice((-1, 0, 0, 0, 1))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--questions", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=60)
    parser.add_argument("--html", type=Path)
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        (home / "bastion.yaml").write_text(yaml.safe_dump(CONFIG))
        platform = Platform.open(home, load_config(home / "bastion.yaml", environ={}))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(create_app(platform), host="127.0.0.1", port=port, log_level="warning")
        )
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        for i in range(args.users):
            key = platform.access.create_key(tenant="acme", user=f"user{i}", role="user").secret
            headers = {"Authorization": f"Bearer {key}"}
            for question in rng.sample(QUESTIONS, args.questions):
                answer = httpx.post(
                    f"{url}/v1/chat/completions",
                    headers=headers,
                    json={
                        "app": "helpdesk",
                        "messages": [{"role": "user", "content": question}],
                        "max_tokens": args.max_tokens,
                        "temperature": 0,
                    },
                    timeout=300,
                ).json()
                text = answer["choices"][0]["message"]["content"]
                httpx.post(
                    f"{url}/v1/feedback",
                    headers=headers,
                    json={
                        "trace_id": answer["bastion"]["trace_id"],
                        "rating": rating_for(text, rng),
                    },
                    timeout=30,
                ).raise_for_status()
        report, arms = platform.experiments.report("acme", "helpdesk-tone")
        server.should_exit = True
        if args.html:
            args.html.write_text(render_html(report, arms), encoding="utf-8")
        summary = {
            "seconds": round(time.perf_counter() - started, 1),
            "requests": report["requests"],
            "decision": report["decision"],
            "decisions": report["decisions"],
            "feedback_score": report["metrics"]["feedback_score"],
            "completion_tokens": report["metrics"]["completion_tokens"]["arms"],
            "latency_ms": report["metrics"]["latency_ms"]["arms"],
        }
        print(json.dumps(summary, indent=2))
        platform.close()


if __name__ == "__main__":
    main()
