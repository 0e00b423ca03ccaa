"""The applications on the demo company, scored by `bastion eval app`'s harness.

service-reply: the demo's support cases labelled with the articles that answer them
(src/bastion/apps/service_reply/relevant_articles.yaml), drafted as dave (support) with each
model. Peer, in the same run: the same retrieval shown to a model that only echoes
its prompt (what citing and support look like when the model adds nothing).

segment: the 113 requests of src/bastion/apps/segment/eval/requests.jsonl, as alice (exec),
scored on the member set (exact, Jaccard) and the specification. Peers, in the same run:
schema linking alone (the values the request names put in their fields, no model: what
the model adds is time windows, negation, topics and titles), and the same model with the
same prompt but no JSON schema enforced while decoding (on every 4th request: the share
that is a valid specification at all).

campaign-email: one brief to the first --emails members of a saved segment (US West contacts
who ordered in the 365 days before the demo's last day), written as olivia (marketing),
scored by the app's checks. Peer, in the same run: the same model asked plainly ("Write a
marketing email about: BRIEF") with no voice, facts or rules, scored by the same checks
(banned words, exclamation marks, voice similarity to past campaigns): the seed's claim
that stock output is bland, measured.

slack-digest: the first --dialogues dialogues of DialogSum (dev) and the first --meetings
meetings of QMSum (test), from ../shared/eval/summarization, turned into Slack exports (one
turn one message) and digested as alice through `bastion eval app`'s harness; the summary
scored with ROUGE-1/2/L F1 against the reference. Peers, in the same run: lead (the first
messages, up to the median reference's length in words) and each model's plain prompt
("Summarize this conversation." and the transcript, cut to the model's context, straight to
the backend: no batching, guards or combining).

Larger models (--models, installed by `bastion models install`, served from their GGUF) join
the default model in every app's figures (--no-default leaves it out, for a run of a larger
model alone), run as the same people (the bench lets the user role use them).

Usage: python benchmarks/bench_apps.py [--cases 30] [--scale 1.0] [--only segment]
    [--segment-every N] [--models qwen2.5-coder-0.5b,qwen2.5-coder-1.5b] [--emails 10]
    [--dialogues 100] [--meetings 5] [--no-default]
"""

from __future__ import annotations

import argparse
import json
import platform as machine
import re
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any, cast

import yaml

from bastion.apps import AppRun
from bastion.apps.evaluation import AppCase, evaluate_app, read_cases
from bastion.apps.segment import EVAL_REQUESTS, INSTRUCTIONS, SegmentSettings, parse_spec
from bastion.apps.segment.query import SegmentQuery
from bastion.apps.segment.spec import SegmentSpec
from bastion.apps.service_reply import demo_cases
from bastion.apps.slack_digest.schemas import DigestSettings
from bastion.apps.slack_digest.scoring import LabelledChannel
from bastion.apps.slack_digest.summaries import (
    lead,
    median_words,
    read_summaries,
    summary_cases,
    transcript,
)
from bastion.apps.slack_digest.summarizing import CHARS_PER_TOKEN
from bastion.config import load_config
from bastion.demo import TEMPLATE, init_demo, prepare_demo_data
from bastion.errors import BadRequest
from bastion.grounding.ingest import stored_records
from bastion.grounding.retriever import readable_by
from bastion.labelled.metrics import ROUGE_KINDS, rouge
from bastion.models.base import ChatMessage, GenerationParams
from bastion.models.install import CATALOGUE, is_installed
from bastion.platform import Platform

SUMMARIZATION = Path(__file__).resolve().parents[2] / "shared" / "eval" / "summarization"
DIALOGSUM = SUMMARIZATION / "dialogsum_dev.jsonl"
QMSUM = SUMMARIZATION / "qmsum_test.jsonl"


def service_reply(platform: Platform, models: list[str], limit: int) -> dict[str, Any]:
    records = stored_records(platform.db, "acme", "interaction")
    rows = demo_cases(
        [(r.source_id, str(r.fields["subject"])) for r in records if r.source == "support-cases"]
    )[:limit]
    cases = [AppCase(r["id"], r["input"], r["expected"]) for r in rows]
    dave = platform.access.principal("acme/dave")
    return {
        model: evaluate_app(platform, "service-reply", cases, dave, model=model)
        for model in (*models, "echo")
    }


def linking_only(named: dict[tuple[str, str], list[str]]) -> SegmentSpec:
    """The peer without a model: each value the request names in its own field."""
    parts: dict[str, dict[str, list[str]]] = {}
    for (part, field), values in named.items():
        if values:
            parts.setdefault(part, {})[field] = values
    return SegmentSpec.model_validate(parts)


def segment(platform: Platform, models: list[str], every: int) -> dict[str, Any]:
    cases = read_cases(EVAL_REQUESTS)[::every]
    alice = platform.access.principal("acme/alice")
    query = SegmentQuery(platform.db, SegmentSettings().sources, "acme", readable_by(alice))
    catalogue = query.catalogue()
    # The cases' member sets were computed on a demo of this scale: check they still hold.
    drift = sum(
        sorted(
            m.contact_id
            for m in query.members(
                SegmentSpec.model_validate(c.expected["spec"]), date.fromisoformat(c.input["as_of"])
            )
        )
        != c.expected["members"]
        for c in cases
    )
    result: dict[str, Any] = {"cases": len(cases), "expected_members_drifted": drift}
    scores = []
    for case in cases:
        spec = linking_only(catalogue.named_in(case.input["query"]))
        got = {m.contact_id for m in query.members(spec, date.fromisoformat(case.input["as_of"]))}
        wanted = set(case.expected["members"])
        union = got | wanted
        scores.append((got == wanted, len(got & wanted) / len(union) if union else 1.0))
    result["peer_linking_only"] = {
        "exact_match": round(statistics.fmean(s[0] for s in scores), 4),
        "jaccard": round(statistics.fmean(s[1] for s in scores), 4),
    }
    for model in models:
        result[model] = evaluate_app(platform, "segment", cases, alice, model=model)
    default = platform.config.resolved_default_model
    valid, unconstrained = 0, cases[::4]
    for case in unconstrained:  # the peer without the decoding schema: a specification at all?
        run = AppRun(platform, alice, "segment", SegmentSettings(), default)
        answer = run.ask(
            case.input["query"],
            instructions=INSTRUCTIONS.format(today=case.input["as_of"]),
            max_tokens=360,
        )
        try:
            parse_spec(answer.text)
            valid += 1
        except BadRequest:
            pass
    result[f"peer_{default}_unconstrained"] = {
        "requests": len(unconstrained),
        "valid_specifications": round(valid / len(unconstrained), 4),
    }
    return result


BRIEF = (
    "Firmware 4.2 lets you update 10 % of your gateways first and the rest a day later, so "
    "a bad update never takes a whole site offline. Invite them to the 30-minute webinar on "
    "January 20."
)


def campaign(platform: Platform, models: list[str], emails: int) -> dict[str, Any]:
    from bastion.apps.campaign_email import CampaignSettings, unit_vector, voice_documents
    from bastion.apps.campaign_email.voice import read_profile
    from bastion.apps.segment.store import Segments

    olivia = platform.access.principal("acme/olivia")
    spec = {"account": {"region": ["US West"]}, "orders": {"within_days": 365}}
    Segments(platform.db, "acme").save(
        "bench-west", query="US West buyers", spec=spec, explanation="", as_of="2026-01-05",
        count=0, created_by="olivia", run_id="bench",
    )  # fmt: skip
    guide, past = voice_documents(
        AppRun(platform, olivia, "campaign-email", CampaignSettings()), CampaignSettings()
    )
    profile = read_profile(guide, past)
    centroid = unit_vector(platform.grounding.embedder.embed(past).mean(axis=0))
    return {
        "emails": emails,
        **{m: campaign_by(platform, m, emails, profile, centroid) for m in models},
    }


def campaign_by(
    platform: Platform, model: str, emails: int, profile: Any, centroid: Any
) -> dict[str, Any]:
    """One model's emails to the segment, scored, and the same model's stock emails."""
    from bastion.apps import run_app
    from bastion.apps.campaign_email import CampaignResult, CampaignSettings, score, unit_vector
    from bastion.apps.campaign_email.voice import check_rules

    olivia = platform.access.principal("acme/olivia")
    started = time.perf_counter()
    result = run_app(
        platform, "campaign-email",
        {"segment": "bench-west", "brief": BRIEF, "limit": emails,
         "campaign": "bench-" + re.sub(r"[^a-z0-9-]", "-", model.lower())},
        olivia, model=model,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    output = cast(CampaignResult, result.output)
    ours = {k: round(v, 4) if v is not None else None for k, v in score(output, {}).items()}
    ours["seconds_per_email"] = round(seconds / max(1, len(output.emails)), 1)
    run = AppRun(platform, olivia, "campaign-email", CampaignSettings(), model)
    embedder = platform.grounding.embedder
    stock = []
    for _ in output.emails:
        text = run.ask(f"Write a marketing email about: {BRIEF}", max_tokens=320).text
        rules = check_rules(text.split("\n", 1)[0], text, "(footer)", profile)
        stock.append(
            (
                not rules.banned_terms and rules.exclamations_ok,
                float(unit_vector(embedder.embed_one(text)) @ centroid),
            )
        )
    ours_rules = statistics.fmean(
        not e.checks["brand_rules"]["banned_terms"] and e.checks["brand_rules"]["exclamations_ok"]
        for e in output.emails
    )
    return {
        "brand_grounded": {**ours, "no_banned_words_or_exclamations": round(ours_rules, 4)},
        "peer_stock_prompt": {
            "no_banned_words_or_exclamations": round(statistics.fmean(s[0] for s in stock), 4),
            "voice_similarity": round(statistics.fmean(s[1] for s in stock), 4),
            "footer_and_sign_off": 0.0,  # nothing adds them
        },
    }


def plain_prompt(platform: Platform, model: str, channel: LabelledChannel) -> str:
    """The model asked straight, the transcript cut to what its context holds."""
    backend = platform.registry.backend(model)
    room = (backend.info.context_length - DigestSettings().summary_tokens - 40) * CHARS_PER_TOKEN
    text = "\n".join(transcript(channel))[:room]
    prompt = f"Summarize this conversation.\n\n{text}"
    params = GenerationParams(temperature=0.0, max_tokens=DigestSettings().summary_tokens)
    return backend.generate([ChatMessage("user", prompt)], params).text


def mean_rouge(pairs: list[tuple[str, str]]) -> dict[str, float]:
    found = [rouge(summary, reference) for summary, reference in pairs]
    return {k: round(statistics.fmean(f[k] for f in found), 4) for k in ROUGE_KINDS}


def digest(platform: Platform, models: list[str], data: Path, limit: int) -> dict[str, Any]:
    cases = read_summaries(data, limit)
    rows = summary_cases(cases, platform.home / "exports" / "summaries" / data.stem, "alice")
    app_cases = [AppCase(r["id"], r["input"], r["expected"]) for r in rows]
    alice = platform.access.principal("acme/alice")
    words = median_words(cases)
    result: dict[str, Any] = {
        "cases": len(cases),
        "peer_lead": {
            "words": words,
            **mean_rouge([(lead(c.channel, words), c.reference) for c in cases]),
        },
    }
    for model in models:
        started = time.perf_counter()
        plain = [(plain_prompt(platform, model, c.channel), c.reference) for c in cases]
        result[model] = {
            "slack_digest": evaluate_app(platform, "slack-digest", app_cases, alice, model=model),
            "peer_plain_prompt": {
                **mean_rouge(plain),
                "seconds_per_case": round((time.perf_counter() - started) / len(cases), 1),
            },
        }
    return result


MODELS_ROOT = Path(__file__).resolve().parents[1] / ".cache" / "models-install"


def open_demo(home: Path, larger: list[Any], scale: float) -> tuple[Platform, float]:
    """The demo company at `scale` in `home`, with the echo model and the `larger` installed
    models (served from their GGUF) that its users may use; and the seconds setting it up
    took."""
    config = yaml.safe_load(TEMPLATE.read_text())
    config["models"].append({"name": "echo", "backend": "echo"})
    config["access"]["policies"]["user"]["models"] += ["echo", *(m.name for m in larger)]
    for model in larger:
        if not is_installed(model, MODELS_ROOT):
            raise SystemExit(
                f"{model.name} is not in {MODELS_ROOT}: "
                f"`bastion models install {model.name} --dir {MODELS_ROOT}`"
            )
        config["models"].append(
            {
                "name": model.name,
                "backend": "llamacpp",
                "threads": 2,
                "context_length": 8192,
                "path": str(MODELS_ROOT / model.file_name),
            }
        )
    (home / "bastion.yaml").write_text(yaml.safe_dump(config))
    platform = Platform.open(home, load_config(home / "bastion.yaml", environ={}))
    init_demo(home, platform.access)
    started = time.perf_counter()
    prepare_demo_data(platform, scale=scale)
    return platform, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=30)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument(
        "--only", choices=["service-reply", "segment", "campaign-email", "slack-digest"]
    )
    parser.add_argument("--emails", type=int, default=10)
    parser.add_argument("--segment-every", type=int, default=1, help="every Nth request")
    parser.add_argument("--models", default="", help="installed larger models, beside the default")
    parser.add_argument(
        "--no-default", action="store_true", help="leave the default model out (measured apart)"
    )
    parser.add_argument("--dialogues", type=int, default=100, help="DialogSum dialogues")
    parser.add_argument("--meetings", type=int, default=5, help="QMSum meetings")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        larger = [m for m in CATALOGUE if m.name in args.models.split(",")]
        platform, setup_s = open_demo(home, larger, args.scale)
        result = {
            "benchmark": "apps",
            "machine": f"{machine.machine()}, {machine.python_version()}",
            "demo_setup_s": round(setup_s, 1),
        }
        models = [platform.config.resolved_default_model, *(m.name for m in larger)]
        models = models[1:] if args.no_default else models
        if args.only in (None, "service-reply"):
            result["service_reply"] = service_reply(platform, models, args.cases)
        if args.only in (None, "segment"):
            result["segment"] = segment(platform, models, args.segment_every)
        if args.only in (None, "campaign-email"):
            result["campaign_email"] = campaign(platform, models, args.emails)
        if args.only in (None, "slack-digest"):
            result["slack_digest"] = {
                data.stem: digest(platform, models, data, limit)
                for data, limit in ((DIALOGSUM, args.dialogues), (QMSUM, args.meetings))
                if limit > 0
            }
        platform.close()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
