"""The segment app on the demo company: schema linking, the decoding schema, the SQL
against a plain Python reading of the same records, access, saving and versions, the CLI
and HTTP surfaces, and the real embedded model held to the schema."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import httpx
import jsonschema
import pytest
from pydantic import ValidationError
from sqlalchemy import select
from typer.testing import CliRunner

from bastion.access import Principal
from bastion.apps import run_app
from bastion.apps.segment import EVAL_REQUESTS, SegmentSettings, score
from bastion.apps.segment.query import SegmentQuery
from bastion.apps.segment.spec import (
    Catalogue,
    RequestTerms,
    SegmentSpec,
    decoding_schema,
    explain,
    normalized,
    stem,
)
from bastion.cli import app as cli
from bastion.errors import BadRequest, NotFound, PermissionDenied
from bastion.grounding.retriever import readable_by
from bastion.platform import Platform
from bastion.storage.tables import GroundingRecord
from conftest import SCRIPT, LiveServer

TODAY = date(2026, 1, 5)
CATALOGUE = Catalogue(
    {
        ("account", "industry"): ("Food & Beverage", "Manufacturing", "Pharmaceuticals"),
        ("account", "region"): ("US East", "US West"),
        ("account", "tier"): ("growth", "strategic"),
        ("orders", "product"): ("EdgeGateway G2", "EdgeGateway G2 Rugged", "PowerTap E1"),
        ("orders", "status"): ("fulfilled", "returned"),
        ("cases", "status"): ("closed", "open"),
        ("cases", "priority"): ("high", "urgent"),
    }
)


def named(request: str) -> dict[tuple[str, str], list[str]]:
    return {k: v for k, v in CATALOGUE.named_in(request).items() if v}


def test_schema_linking_finds_the_values_a_request_names() -> None:
    assert named("manufacturers in the Nordics with an open case") == {
        ("account", "industry"): ["Manufacturing"],
        ("cases", "status"): ["open"],
    }
    assert named("food and beverage or pharmaceutical contacts in us west") == {
        ("account", "industry"): ["Food & Beverage", "Pharmaceuticals"],
        ("account", "region"): ["US West"],
    }
    # the longest product named; a product's first word names the product family
    assert named("who bought the EdgeGateway G2 Rugged")[("orders", "product")] == [
        "EdgeGateway G2 Rugged"
    ]
    assert named("who bought an EdgeGateway")[("orders", "product")] == [
        "EdgeGateway G2",
        "EdgeGateway G2 Rugged",
    ]
    assert named("who bought PowerTap") == {("orders", "product"): ["PowerTap E1"]}
    assert named("aerospace companies in Scandinavia") == {}


def test_a_request_bounds_what_free_fields_may_hold() -> None:
    request = (
        "Plant managers with an open case about pairing sensors, who did not buy in the last "
        "2 months or since 2025-10-01, with orders over $10k in 2024"
    )
    terms = RequestTerms.of(request, CATALOGUE.named_in(request))
    assert {"plant manager", "pair", "pair sensor"} <= set(terms.phrases)
    # neither the segment's own words nor the data values it names ("open": a case status)
    assert not {"open", "case", "buy", "last"} & set(terms.phrases)
    assert terms.days == [60] and 10_000 in terms.amounts
    assert {"2025-10-01", "2025-09-30", "2024-01-01", "2024-12-31"} <= set(terms.dates)
    assert terms.negates and not terms.email
    assert terms.relations == {"orders", "cases"}
    plain = RequestTerms.of("Contacts at mining accounts", {("account", "industry"): ["Mining"]})
    assert plain == RequestTerms([], [], [], [], False, False, frozenset())
    # A request that speaks of no orders or cases puts no filter on them: the schema says null.
    schema = decoding_schema({("account", "industry"): ["Mining"]}, plain)
    assert schema["properties"]["orders"] == schema["properties"]["cases"] == {"type": "null"}
    bought = RequestTerms.of("manufacturing contacts who bought in the last 90 days")
    assert bought.relations == {"orders"}  # the quick start's request: no support case
    named_status = RequestTerms.of("escalated accounts", {("cases", "status"): ["escalated"]})
    assert named_status.relations == {"cases"}


def test_the_decoding_schema_allows_only_what_the_request_states() -> None:
    request = "strategic manufacturers with an urgent case about calibration"
    named = CATALOGUE.named_in(request)
    schema = decoding_schema(named, RequestTerms.of(request, named))
    jsonschema.Draft202012Validator.check_schema(schema)
    empty = {
        "industry": [],
        "region": [],
        "tier": [],
        "min_revenue_usd": None,
        "max_revenue_usd": None,
    }
    spec: dict[str, Any] = {
        "account": {**empty, "industry": ["Manufacturing"], "tier": ["strategic"]},
        "contact": {"job_title": [], "has_email": None},
        "orders": None,
        "cases": {
            "has": True,
            "status": [],
            "priority": ["urgent"],
            "about": ["calibration"],
            "within_days": None,
            "since": None,
            "until": None,
        },
    }
    jsonschema.validate(spec, schema)
    SegmentSpec.model_validate(spec)  # what the model writes is a specification
    cases = spec["cases"]
    for wrong in (
        {**spec, "account": {**spec["account"], "region": ["US West"]}},  # not named
        {**spec, "account": {**spec["account"], "industry": ["Mining"]}},  # not in the data
        {**spec, "cases": {**cases, "about": ["firmware"]}},  # a topic it does not state
        {**spec, "cases": {**cases, "within_days": 90}},  # a window it does not state
        {**spec, "cases": {**cases, "has": False}},  # it negates nothing
        {**spec, "contact": {"job_title": [], "has_email": True}},  # it says nothing of email
        {k: v for k, v in spec.items() if k != "orders"},  # every key is written
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(wrong, schema)


def test_every_labelled_request_can_be_written_under_its_schema(
    demo: tuple[Platform, dict[str, Any]],
) -> None:
    """The schema never rules out the right answer: each of the 113 labelled requests'
    specification (in the stemmed form filters match by) decodes under its own schema."""
    platform, _ = demo
    alice = platform.access.principal("acme/alice")
    catalogue = SegmentQuery(
        platform.db, SegmentSettings().sources, "acme", readable_by(alice)
    ).catalogue()
    for line in EVAL_REQUESTS.read_text().splitlines():
        case = json.loads(line)
        request = case["input"]["query"]
        gold = SegmentSpec.model_validate(case["expected"]["spec"])
        for part in (gold.contact, gold.cases):
            for field in ("job_title", "about"):
                if part is not None and hasattr(part, field):
                    setattr(part, field, [stem(w) for w in getattr(part, field)])
        # (a value the scale-0.3 demo lacks is not offered: compare with what it has)
        named = {
            key: sorted(set(values) | _gold_values(gold, key))
            for key, values in catalogue.named_in(request).items()
        }
        schema = decoding_schema(named, RequestTerms.of(request, named))
        jsonschema.validate(gold.model_dump(mode="json"), schema)


def _gold_values(spec: SegmentSpec, key: tuple[str, str]) -> set[str]:
    part = getattr(spec, key[0])
    return set(getattr(part, key[1])) if part is not None else set()


def test_specifications_are_checked_explained_and_compared() -> None:
    with pytest.raises(ValidationError, match="since is after"):
        SegmentSpec.model_validate({"orders": {"since": "2025-05-01", "until": "2025-01-01"}})
    with pytest.raises(ValidationError, match="extra"):
        SegmentSpec.model_validate({"account": {"country": ["Norway"]}})
    spec = SegmentSpec.model_validate(
        {
            "account": {"industry": ["Manufacturing"], "min_revenue_usd": 1e8},
            "contact": {"job_title": ["plant managers"]},
            "orders": {"product": ["PowerTap E1"], "within_days": 90},
            "cases": {"has": False, "status": ["open"]},
        }
    )
    assert explain(spec, TODAY) == (
        "Contacts at accounts in Manufacturing, with annual revenue of at least "
        "100,000,000 USD; whose job title mentions 'plant managers'; who placed an order "
        "of PowerTap E1 in the 90 days before 2026-01-05; with no support case with "
        "status open."
    )
    assert "nothing" in explain(SegmentSpec(), TODAY)
    assert stem("Pairing sensors") == "pair sensor"
    same = spec.model_copy(
        update={"contact": spec.contact.model_copy(update={"job_title": ["Plant manager"]})}
    )
    assert normalized(same) == normalized(spec)


def _readable(row: GroundingRecord, principal: Principal) -> bool:
    return bool(set(row.acl) & set(readable_by(principal)))


def reference_members(platform: Platform, principal: Principal, spec: SegmentSpec) -> set[str]:
    """The segment read in plain Python from the same records, as the SQL should."""
    with platform.db.session() as s:
        rows = [r for r in s.scalars(select(GroundingRecord)) if r.tenant_id == "acme"]
    visible = [r for r in rows if _readable(r, principal)]
    by_source: dict[str, list[GroundingRecord]] = {}
    for r in visible:
        by_source.setdefault(r.source, []).append(r)
    accounts = {r.source_id: r.fields for r in by_source.get("crm-accounts", [])}

    def window_ok(day: str, w: Any) -> bool:
        since, until = w.bounds(TODAY)
        day = day[:10]
        return (since is None or day >= since.isoformat()) and (
            until is None or day <= until.isoformat()
        )

    def contact_ok(c: GroundingRecord) -> bool:
        a, k = spec.account, spec.contact
        if k.job_title and not any(
            stem(w) in str(c.fields.get("job_title", "")).lower() for w in k.job_title
        ):
            return False
        if k.has_email is not None and bool(c.fields.get("email")) != k.has_email:
            return False
        if not a.empty():
            acc = accounts.get(str(c.fields.get("account")))
            if acc is None:
                return False
            for field in ("industry", "region", "tier"):
                if getattr(a, field) and acc.get(field) not in getattr(a, field):
                    return False
            revenue = float(str(acc.get("annual_revenue_usd")))
            if a.min_revenue_usd is not None and revenue < a.min_revenue_usd:
                return False
            if a.max_revenue_usd is not None and revenue > a.max_revenue_usd:
                return False
        if spec.orders is not None:
            o = spec.orders
            placed = any(
                r.fields.get("contact_id") == c.source_id
                and window_ok(str(r.fields["ordered_at"]), o)
                and (not o.product or r.fields.get("product") in o.product)
                and (not o.status or r.fields.get("status") in o.status)
                and (o.min_total_usd is None or float(r.fields["total_usd"]) >= o.min_total_usd)
                for r in by_source.get("erp-orders", [])
            )
            if placed != o.has:
                return False
        return True

    def cases_ok(person: str) -> bool:
        k = spec.cases
        assert k is not None
        customers = {
            r.source_id for r in by_source.get("support-customers", []) if r.contact_id == person
        }
        opened = any(
            r.fields.get("customer_id") in customers
            and window_ok(str(r.fields["created_at"]), k)
            and (not k.status or r.fields.get("status") in k.status)
            and (not k.priority or r.fields.get("priority") in k.priority)
            and (
                not k.about
                or any(
                    stem(w) in f"{r.fields.get('subject', '')} {r.fields.get('body', '')}".lower()
                    for w in k.about
                )
            )
            for r in by_source.get("support-cases", [])
        )
        return opened == k.has

    people = {
        r.contact_id
        for r in visible
        if r.source in ("crm-contacts", "support-customers") and r.contact_id
    }
    found = set()
    for person in people:
        crm = [r for r in by_source.get("crm-contacts", []) if r.contact_id == person]
        if not any(contact_ok(c) for c in crm):
            continue
        if spec.cases is not None and not cases_ok(person):
            continue
        found.add(person)
    return found


SPECS = [
    {"account": {"industry": ["Manufacturing", "Utilities"]}},
    {"account": {"region": ["US West"], "min_revenue_usd": 5e7}},
    {"contact": {"job_title": ["engineers"]}, "account": {"tier": ["strategic"]}},
    {"orders": {"within_days": 180}},
    {"orders": {"has": False}},
    {"orders": {"product": ["PowerTap E1", "VibeSense V3"], "min_total_usd": 3000}},
    {"orders": {"status": ["returned", "cancelled"], "since": "2025-01-01"}},
    {"cases": {"status": ["open", "pending"]}},
    {"cases": {"has": False}},
    {"cases": {"about": ["firmware"], "priority": ["high", "urgent"]}},
    {"account": {"industry": ["Logistics"]}, "orders": {"within_days": 365}, "cases": {}},
]


@pytest.mark.parametrize("user", ["alice", "carol", "olivia"])
def test_the_sql_finds_what_a_plain_reading_of_the_records_finds(
    demo: tuple[Platform, dict[str, Any]], user: str
) -> None:
    """As exec (everything), sales (no cases) and marketing (accounts, contacts, orders)."""
    platform, _ = demo
    principal = platform.access.principal(f"acme/{user}")
    query = SegmentQuery(platform.db, SegmentSettings().sources, "acme", readable_by(principal))
    nonempty = 0
    for raw in SPECS:
        spec = SegmentSpec.model_validate(raw)
        got = {m.contact_id for m in query.members(spec, TODAY)}
        assert got == reference_members(platform, principal, spec), raw
        nonempty += bool(got)
    assert nonempty >= 6  # the specifications select someone, so the comparison means something
    members = query.members(SegmentSpec.model_validate(SPECS[0]), TODAY)
    assert all(m.name and "@" in (m.email or "@") for m in members)


def test_a_value_is_a_bound_parameter_never_sql(demo: tuple[Platform, dict[str, Any]]) -> None:
    platform, _ = demo
    alice = platform.access.principal("acme/alice")
    query = SegmentQuery(platform.db, SegmentSettings().sources, "acme", readable_by(alice))
    hostile = SegmentSpec.model_validate(
        {"cases": {"about": ["x' OR 1=1 --", "100%", "a_b"]}, "account": {"industry": ["'"]}}
    )
    assert query.members(hostile, TODAY) == []
    assert platform.db.engine.connect().execute(select(GroundingRecord.id).limit(1)).first()


def spec_json(**parts: Any) -> str:
    """A request the echo model answers with itself: the whole specification as JSON."""
    body: dict[str, Any] = {
        "account": {
            "industry": [],
            "region": [],
            "tier": [],
            "min_revenue_usd": None,
            "max_revenue_usd": None,
        },
        "contact": {"job_title": [], "has_email": None},
        "orders": None,
        "cases": None,
    }
    for key, value in parts.items():
        body[key] = {**body[key], **value} if isinstance(body[key], dict) else value
    return json.dumps(body)


ORDERS = {
    "has": True,
    "product": [],
    "status": [],
    "min_total_usd": None,
    "within_days": 365,
    "since": None,
    "until": None,
}


def segment(platform: Platform, who: str, request: str, answer: str, **given: Any) -> Any:
    """Run the app with the scripted model answering `answer` (the specification)."""
    SCRIPT.append(answer)
    principal = platform.access.principal(who)
    data = {"query": request, **given}
    return run_app(platform, "segment", data, principal, model="scripted").output


def test_a_run_saves_a_version_and_explains_it(demo: tuple[Platform, dict[str, Any]]) -> None:
    platform, _ = demo
    olivia = "acme/olivia"  # marketing
    request = "US West contacts who ordered in the last 365 days"
    answer = spec_json(account={"region": ["US West"]}, orders=ORDERS)
    first = segment(platform, olivia, request, answer, name="west-recent")
    assert (first.name, first.version) == ("west-recent", 1)
    assert first.explanation.startswith("Contacts at accounts in the US West region; who placed")
    assert "2026-01-05" in first.explanation  # the demo's `today`
    assert first.count == len(first.members) > 0 and first.understood == ["US West"]
    assert first.not_understood == []
    again = segment(platform, olivia, request, answer, name="west-recent")
    assert again.version == 1  # the same specification: the same version
    wider = spec_json(account={"region": ["US West"]}, orders={**ORDERS, "within_days": None})
    second = segment(platform, olivia, "US West contacts who ordered", wider, name="west-recent")
    assert second.version == 2 and second.count >= first.count
    # A filter on records marketing may not read matches no one, and says so.
    cases = spec_json(  # (no case status may be named: she sees none)
        cases={
            "has": True,
            "status": [],
            "priority": [],
            "about": [],
            "within_days": None,
            "since": None,
            "until": None,
        }
    )
    blind = segment(platform, olivia, "Contacts with a support case", cases, save=False)
    assert blind.count == 0 and blind.name is None
    assert any("support-cases" in n for n in blind.not_understood)


def test_a_request_that_maps_to_nothing_says_so(demo: tuple[Platform, dict[str, Any]]) -> None:
    platform, _ = demo
    output = segment(
        platform, "acme/alice", "Contacts at aerospace firms in the Nordics", spec_json()
    )
    assert output.count == 0 and output.members == [] and output.name is None
    assert "named nothing" in output.explanation
    assert {"aerospace", "firms", "Nordics"} <= set(output.not_understood)


def test_what_a_model_not_held_to_the_schema_writes_is_checked(
    demo: tuple[Platform, dict[str, Any]],
) -> None:
    """A model behind an OpenAI-compatible server is not held to the decoding schema: an
    answer that is not a specification, or that goes beyond the request, is refused."""
    platform, _ = demo
    with pytest.raises(BadRequest, match="not valid"):
        segment(platform, "acme/alice", "Contacts in Canada", "not a specification")
    invented = spec_json(account={"region": ["Canada"], "industry": ["Mining"]})
    with pytest.raises(BadRequest, match="beyond the request"):
        segment(platform, "acme/alice", "Contacts in Canada", invented)
    window = spec_json(account={"region": ["Canada"]}, orders=ORDERS)
    with pytest.raises(BadRequest, match="beyond the request"):
        segment(platform, "acme/alice", "Contacts in Canada who ordered", window)
    alice = platform.access.principal("acme/alice")
    with pytest.raises(BadRequest, match="invalid input"):
        run_app(platform, "segment", {"query": "x", "name": "Bad Name!"}, alice, model="scripted")


def test_segment_cli_and_http(demo: tuple[Platform, dict[str, Any]]) -> None:
    platform, info = demo
    SCRIPT.append(spec_json(account={"region": ["US West"]}))
    with LiveServer(platform) as server:
        headers = {"Authorization": f"Bearer {info['keys']['acme/olivia']}"}
        body = {"input": {"query": "Contacts in US West", "name": "west"}, "model": "scripted"}
        response = httpx.post(server.url + "/v1/apps/segment/runs", json=body, headers=headers)
    assert response.status_code == 200, response.text
    output = response.json()["output"]
    assert output["name"] == "west" and output["count"] == len(output["members"]) > 0
    assert set(output["members"][0]) == {"contact_id", "name", "email"}
    env = {"BASTION_HOME": str(info["home"])}
    listed = CliRunner().invoke(cli, ["segment", "list", "--as", "acme/olivia", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "west" in {row["name"] for row in json.loads(listed.output)}
    shown = CliRunner().invoke(
        cli, ["segment", "show", "west", "--as", "acme/olivia", "--format", "json"], env=env
    )
    assert shown.exit_code == 0, shown.output
    body = json.loads(shown.output)
    assert body["count_now"] == output["count"] and body["versions"] == [1]
    assert "US West" in body["explanation"]
    missing = CliRunner().invoke(cli, ["segment", "show", "nope", "--as", "acme/olivia"], env=env)
    assert missing.exit_code != 0 and "bastion segment list" in missing.output


def test_saved_segments_belong_to_roles_that_may_use_the_app(
    demo: tuple[Platform, dict[str, Any]],
) -> None:
    from bastion.apps.segment import saved

    platform, _ = demo
    bob = platform.access.principal("acme/bob")  # developer: every app
    with pytest.raises(NotFound, match="segment list"):
        saved(platform, bob).get("never-made")
    erin = platform.access.principal("globex/erin")
    assert all(row.tenant_id == "globex" for row in saved(platform, erin).latest())
    stranger = Principal("acme", "mallory", "auditor")
    with pytest.raises(PermissionDenied):
        saved(platform, stranger)


def test_the_eval_cases_are_well_formed() -> None:
    rows = [json.loads(line) for line in EVAL_REQUESTS.read_text().splitlines()]
    assert len(rows) >= 100
    assert len({r["input"]["query"] for r in rows}) == len(rows)
    for row in rows:
        SegmentSpec.model_validate(row["expected"]["spec"])
    perfect = score(
        _output(rows[0]["expected"]["members"], rows[0]["expected"]["spec"]), rows[0]["expected"]
    )
    assert perfect == {"exact_match": 1.0, "jaccard": 1.0, "spec_match": 1.0}
    half = score(_output(rows[0]["expected"]["members"][:1], {}), rows[0]["expected"])
    assert half["exact_match"] == 0.0 and half["spec_match"] == 0.0


def _output(members: list[str], spec: dict[str, Any]) -> Any:
    from bastion.apps.segment import SegmentMember, SegmentResult

    return SegmentResult(
        name=None,
        version=None,
        spec=SegmentSpec.model_validate(spec),
        explanation="",
        understood=[],
        not_understood=[],
        count=len(members),
        members=[SegmentMember(contact_id=m, name=m, email=None) for m in members],
    )


@pytest.mark.slow
def test_the_embedded_model_writes_valid_specifications_under_the_schema() -> None:
    """The real model on llama.cpp, held to the decoding schema: whatever it makes of a
    request, the answer is a specification that names only the values the request names."""
    from bastion.apps.segment import INSTRUCTIONS
    from bastion.models import ChatMessage, GenerationParams, JsonFormat, ModelInfo
    from bastion.models.embedded import embedded_gguf_path
    from bastion.models.llamacpp_backend import LlamaCppBackend

    model = LlamaCppBackend(
        ModelInfo("smollm2", "llamacpp", None, 4096), embedded_gguf_path(), threads=2
    )
    for request in (
        "Contacts at manufacturing accounts with an open case who bought PowerTap",
        "People in Scandinavia who like sailing",
    ):
        linked = CATALOGUE.named_in(request)
        params = GenerationParams(
            temperature=0,
            max_tokens=360,
            json_format=JsonFormat(
                decoding_schema(linked, RequestTerms.of(request, linked)), "segment"
            ),
        )
        messages = [
            ChatMessage("system", INSTRUCTIONS.format(today="2026-01-05")),
            ChatMessage("user", request),
        ]
        answer = model.generate(messages, params)
        assert answer.finish_reason == "stop", answer.text
        spec = SegmentSpec.model_validate(json.loads(answer.text))
        for (part, field), values in linked.items():
            chosen = getattr(getattr(spec, part) or SegmentSpec(), field, [])
            assert set(chosen) <= set(values)
