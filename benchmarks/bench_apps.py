"""The applications on the demo company, scored by `bastion eval app`'s harness.

service-reply: the demo's support cases labelled with the articles that answer them
(src/bastion/apps/service_reply/relevant_articles.yaml), drafted as dave (support) with the
default model. Peer, in the same run: the same retrieval shown to a model that only echoes
its prompt (what citing and support look like when the model adds nothing).

Usage: python benchmarks/bench_apps.py [--cases 30] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import json
import platform as machine
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bastion.apps.evaluation import AppCase, evaluate_app
from bastion.apps.service_reply import demo_cases
from bastion.config import load_config
from bastion.demo import TEMPLATE, init_demo, prepare_demo_data
from bastion.grounding.ingest import stored_records
from bastion.platform import Platform


def service_reply(platform: Platform, limit: int) -> dict[str, Any]:
    records = stored_records(platform.db, "acme", "interaction")
    rows = demo_cases(
        [(r.source_id, str(r.fields["subject"])) for r in records if r.source == "support-cases"]
    )[:limit]
    cases = [AppCase(r["id"], r["input"], r["expected"]) for r in rows]
    dave = platform.access.principal("acme/dave")
    default = platform.config.resolved_default_model
    return {
        model: evaluate_app(platform, "service-reply", cases, dave, model=model)
        for model in (default, "echo")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=30)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        config = yaml.safe_load(TEMPLATE.read_text())
        config["models"].append({"name": "echo", "backend": "echo"})
        config["access"]["policies"]["user"]["models"].append("echo")
        (home / "bastion.yaml").write_text(yaml.safe_dump(config))
        platform = Platform.open(home, load_config(home / "bastion.yaml", environ={}))
        init_demo(home, platform.access)
        started = time.perf_counter()
        prepare_demo_data(platform, scale=args.scale)
        setup_s = time.perf_counter() - started
        result = {
            "benchmark": "apps",
            "machine": f"{machine.machine()}, {machine.python_version()}",
            "demo_setup_s": round(setup_s, 1),
            "service_reply": service_reply(platform, args.cases),
        }
        platform.close()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
