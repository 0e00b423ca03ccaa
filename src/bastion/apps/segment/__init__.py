"""`segment`: a marketer's request in plain words becomes a saved, versioned segment.

Steps: find the values the request names in the data the person may read (schema linking);
have the model write a specification under a JSON schema that allows only those values
(enforced while decoding); validate it; run it as parameterised SQL over the harmonized
records the person may read; explain it back in plain words; save it as a new version.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import jsonschema
from pydantic import BaseModel, Field, ValidationError

from bastion.access import Principal
from bastion.apps import AppRun, AppSpec, require_app
from bastion.apps.segment.query import SegmentQuery, SegmentSources
from bastion.apps.segment.spec import (
    CATEGORIES,
    VOCABULARY,
    Catalogue,
    RequestTerms,
    SegmentSpec,
    decoding_schema,
    explain,
    normalized,
    unbounded_to_null,
)
from bastion.apps.segment.store import Segments
from bastion.errors import BadRequest
from bastion.grounding.retriever import readable_by
from bastion.models import JsonFormat
from bastion.platform import Platform
from bastion.plugins import hookimpl
from bastion.plugins.hookspecs import Register
from bastion.storage.tables import SavedSegment

EVAL_REQUESTS = Path(__file__).with_name("eval") / "requests.jsonl"
NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"


class SegmentSettings(BaseModel):
    sources: SegmentSources = SegmentSources()
    # (The demo sets its data's last day, so that "the last 90 days" finds its orders.)
    today: date | None = Field(
        None, description="The date time windows count back from; empty: the day of the run."
    )
    max_tokens: int = Field(
        360, ge=64, le=2048, description="Longest specification (a full one is ~200 tokens)."
    )


class SegmentRequest(BaseModel):
    query: str = Field(
        min_length=3, max_length=1000, description="Who the segment is for, in plain words."
    )
    name: str | None = Field(
        None,
        pattern=NAME_PATTERN,
        description="Save under this name (default: from the request's words).",
    )
    as_of: date | None = Field(None, description="The date time windows count back from.")
    save: bool = Field(True, description="Save the segment as a new version.")


class SegmentMember(BaseModel):
    contact_id: str
    name: str
    email: str | None


class SegmentResult(BaseModel):
    name: str | None = Field(description="The saved segment's name (None: not saved).")
    version: int | None
    spec: SegmentSpec
    explanation: str
    understood: list[str] = Field(description="The data values the request was found to name.")
    not_understood: list[str] = Field(
        description="Parts of the request no filter expresses (they were left out)."
    )
    count: int
    members: list[SegmentMember] = Field(description="Every member the person may see.")


INSTRUCTIONS = """You turn a marketer's request into a segment specification (JSON).
Fields:
- account: the contact's company. industry, region, tier: lists of values; min_revenue_usd,
  max_revenue_usd: annual revenue bounds or null.
- contact: job_title: words the job title contains; has_email: true, false or null.
- orders: null unless the request is about buying or orders. has: true for "who bought",
  false for "who never ordered"; product, status: lists; min_total_usd: order value or null;
  within_days: N for "in the last N days" (a month is 30, a year 365); since, until: dates.
- cases: null unless the request is about support cases or tickets. has: true, or false for
  "without a case"; status, priority: lists; about: the topic's words; within_days, since,
  until as for orders.
Use only what the request says. Lists may be empty. Dates are YYYY-MM-DD. Today is {today}.

Request: Facilities management contacts who ordered in the last 2 months but have no open case
JSON: {{"account": {{"industry": ["Facilities Management"], "region": [], "tier": [], \
"min_revenue_usd": null, "max_revenue_usd": null}}, "contact": {{"job_title": [], \
"has_email": null}}, "orders": {{"has": true, "product": [], "status": [], \
"min_total_usd": null, "within_days": 60, "since": null, "until": null}}, "cases": \
{{"has": false, "status": ["open"], "priority": [], "about": [], "within_days": null, \
"since": null, "until": null}}}}

Request: Plant managers at strategic accounts with an urgent ticket about calibration
JSON: {{"account": {{"industry": [], "region": [], "tier": ["strategic"], \
"min_revenue_usd": null, "max_revenue_usd": null}}, "contact": {{"job_title": ["plant \
manager"], "has_email": null}}, "orders": null, "cases": {{"has": true, "status": [], \
"priority": ["urgent"], "about": ["calibration"], "within_days": null, "since": null, \
"until": null}}}}"""


def _unmatched(request: str, understood: list[str], spec: SegmentSpec) -> list[str]:
    covered = {w for text in understood for w in re.findall(r"[a-z0-9]+", text.lower())}
    spec_words = json.dumps(spec.model_dump(mode="json")).lower()
    left = []
    for word in re.findall(r"[A-Za-z][A-Za-z0-9'&-]+", request):
        low = word.lower()
        if low in VOCABULARY or low in covered or low[:5] in {c[:5] for c in covered}:
            continue
        if low in spec_words:
            continue
        left.append(word)
    return list(dict.fromkeys(left))


def parse_spec(text: str, schema: dict[str, Any] | None = None) -> SegmentSpec:
    """The model's specification, validated; held to `schema` (what the request states)
    too, for models not held to it while decoding (behind an OpenAI-compatible server)."""
    try:
        data = unbounded_to_null(json.loads(text))
        if schema is not None:
            jsonschema.validate(data, schema)
        return SegmentSpec.model_validate(data)
    except jsonschema.ValidationError as exc:
        where = ".".join(str(p) for p in exc.absolute_path) or "(the whole)"
        raise BadRequest(
            f"the model's segment specification goes beyond the request at {where} "
            f"({exc.message[:200]}); rephrase the request, or use a model that is held to the "
            "schema while decoding (the llamacpp backend)"
        ) from None
    except (json.JSONDecodeError, ValidationError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else exc.errors()[0]["msg"]
        raise BadRequest(
            f"the model's segment specification is not valid ({reason}); rephrase the "
            "request, or use a model that can follow a JSON schema (the llamacpp backend "
            "enforces it while decoding)"
        ) from None


def _name_for(request: SegmentRequest) -> str:
    if request.name:
        return request.name
    words = re.findall(r"[a-z0-9]+", request.query.lower())
    kept = [w for w in words if w not in VOCABULARY][:6] or words[:6]
    return "-".join(kept)[:64].strip("-") or "segment"


def build(run: AppRun, request: SegmentRequest) -> SegmentResult:
    settings: SegmentSettings = run.settings
    principal = run.principal
    today = request.as_of or settings.today or date.today()
    segments = SegmentQuery(
        run.platform.db, settings.sources, principal.tenant, readable_by(principal)
    )
    run.progress(0, 3, "finding the values the request names")
    catalogue = segments.catalogue()
    named = catalogue.named_in(request.query)
    run.progress(1, 3, "writing the specification")
    schema = decoding_schema(named, RequestTerms.of(request.query, named))
    answer = run.ask(
        request.query,
        instructions=INSTRUCTIONS.format(today=today.isoformat()),
        max_tokens=settings.max_tokens,
        json_format=JsonFormat(schema, "segment"),
    )
    spec = parse_spec(answer.text, schema)
    understood = [
        v for (f, field), values in named.items() for v in values if _used(spec, f, field, v)
    ]
    not_understood = _unmatched(request.query, understood, spec) + _unreadable(segments, spec)
    run.progress(2, 3, "counting the members")
    members = segments.members(spec, today)
    name = version = None
    explanation = explain(spec, today)
    if request.save and not spec.empty():
        name = _name_for(request)
        version = Segments(run.platform.db, principal.tenant).save(
            name,
            query=request.query,
            spec=spec.model_dump(mode="json"),
            explanation=explanation,
            as_of=today.isoformat(),
            count=len(members),
            created_by=principal.user,
            run_id=run.run_id,
        )
    run.progress(3, 3, "done")
    return SegmentResult(
        name=name,
        version=version,
        spec=spec,
        explanation=explanation,
        understood=understood,
        not_understood=not_understood,
        count=len(members),
        members=[SegmentMember(**vars(m)) for m in members],
    )


def saved(platform: Platform, principal: Principal) -> Segments:
    """The person's tenant's saved segments, for one whose role may use the app."""
    require_app(platform, principal, "segment")
    return Segments(platform.db, principal.tenant)


def _settings(platform: Platform) -> SegmentSettings:
    entry = platform.config.app("segment")
    assert entry is not None  # registered apps are always configured
    settings: SegmentSettings = entry.settings
    return settings


def segment_query(platform: Platform, principal: Principal) -> SegmentQuery:
    """Segments over the person's tenant as they may see them, with the app's sources."""
    sources = _settings(platform).sources
    return SegmentQuery(platform.db, sources, principal.tenant, readable_by(principal))


def members_now(
    platform: Platform, principal: Principal, row: SavedSegment, as_of: date | None = None
) -> tuple[date, list[SegmentMember]]:
    """A saved segment's members in today's data (its time windows counted back from
    `as_of`, the app's `today` or the real date), as far as the person may see them."""
    settings = _settings(platform)
    today = as_of or settings.today or date.today()
    found = segment_query(platform, principal).members(SegmentSpec.model_validate(row.spec), today)
    return today, [SegmentMember(**vars(m)) for m in found]


def _used(spec: SegmentSpec, filter_name: str, field: str, value: str) -> bool:
    part = getattr(spec, filter_name)
    return part is not None and value in getattr(part, field)


def _unreadable(segments: SegmentQuery, spec: SegmentSpec) -> list[str]:
    """Filters on records the person may not read at all: they match no one."""
    readable = segments.readable_sources()
    s = segments.sources
    used = {
        s.accounts: not spec.account.empty(),
        s.orders: spec.orders is not None,
        s.cases: spec.cases is not None,
    }
    return [
        f"the filter on '{source}' (you may read none of its records, so it matches no one)"
        for source, on in used.items()
        if on and not readable.get(source, False)
    ]


def score(output: SegmentResult, expected: dict[str, Any]) -> dict[str, float | None]:
    """Against `expected["members"]` (the contact ids of the right segment): whether the
    member set is exactly right, and its Jaccard similarity; against `expected["spec"]`,
    whether the specification means the same (a stricter test where few people match)."""
    wanted = set(expected.get("members", []))
    got = {m.contact_id for m in output.members}
    union = wanted | got
    gold = expected.get("spec")
    same_spec = None
    if gold is not None:
        same_spec = normalized(output.spec) == normalized(SegmentSpec.model_validate(gold))
    return {
        "exact_match": 1.0 if got == wanted else 0.0,
        "jaccard": len(wanted & got) / len(union) if union else 1.0,
        "spec_match": None if same_spec is None else float(same_spec),
    }


def markdown(output: SegmentResult) -> str:
    saved = f"`{output.name}` version {output.version}" if output.name else "not saved"
    lines = [
        f"## Segment ({saved}): {output.count} members",
        "",
        output.explanation,
    ]
    if output.not_understood:
        lines += ["", "**Not understood** (left out): " + "; ".join(output.not_understood)]
    preview = output.members[:20]
    if preview:
        lines += ["", "| contact | name | email |", "|---|---|---|"]
        lines += [f"| {m.contact_id} | {m.name} | {m.email or ''} |" for m in preview]
        if output.count > len(preview):
            lines.append(f"\n... and {output.count - len(preview)} more (`--format json`: all)")
    return "\n".join(lines)


@hookimpl
def register_apps(register: Register) -> None:
    register(
        AppSpec(
            name="segment",
            description="a marketing segment from a request in plain words, saved and versioned",
            settings=SegmentSettings,
            input=SegmentRequest,
            output=SegmentResult,
            run=build,
            markdown=markdown,
            score=score,
        )
    )


__all__ = ["CATEGORIES", "Catalogue", "SegmentRequest", "SegmentResult", "SegmentSettings"]
