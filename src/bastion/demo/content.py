"""Acme Corp's written content, read from the files in data/: tables and Slack scripts in YAML,
articles and emails in Markdown. The generator only draws from it and lays it out."""

from __future__ import annotations

from typing import Any, NamedTuple

from bastion.demo.files import DATA, load_data, read_data


class Product(NamedTuple):
    sku: str
    name: str
    category: str
    price_usd: float
    description: str


class ChannelPlan(NamedTuple):
    name: str
    private: bool
    members: tuple[str, ...]  # usernames
    purpose: str
    topic: str
    volume: tuple[int, int]  # messages a day, before scaling
    joins: tuple[str, ...]  # who joins on the first day
    threads: tuple[tuple[tuple[str, str], ...], ...]  # (speaker, text) of a message and replies
    singles: tuple[tuple[str, str], ...]


def _said(lines: list[dict[str, str]]) -> tuple[tuple[str, str], ...]:
    """`- speaker: text` lines as (speaker, text) pairs."""
    return tuple(pair for line in lines for pair in line.items())


# username, real name, title, team
EMPLOYEES: tuple[tuple[str, str, str, str], ...] = tuple(
    (e["username"], e["name"], e["title"], e["team"]) for e in load_data("employees.yaml")
)

_crm = load_data("crm.yaml")
PHONE_STYLES: tuple[str, ...] = tuple(_crm["phone_styles"])
REGIONS: dict[str, tuple[str, ...]] = {
    name: tuple(region["area_codes"]) for name, region in _crm["regions"].items()
}
REGION_WEIGHTS: dict[str, int] = {name: r["weight"] for name, r in _crm["regions"].items()}
# Sorted, so that the draws do not depend on the order in the file.
ALL_AREA_CODES = tuple(code for name in sorted(REGIONS) for code in REGIONS[name])
ACCOUNT_PREFIXES: tuple[str, ...] = tuple(_crm["account_prefixes"])
INDUSTRIES: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in _crm["industries"].items()}
LEGAL_SUFFIXES: tuple[str, ...] = tuple(_crm["legal_suffixes"])
# (industries the note fits, or () for any; note)
ACCOUNT_NOTES: tuple[tuple[tuple[str, ...], str], ...] = tuple(
    (tuple(n.get("industries", ())), n["note"]) for n in _crm["account_notes"]
)
JOB_TITLES: tuple[str, ...] = tuple(_crm["job_titles"])
CONTACT_NOTES: tuple[str, ...] = tuple(_crm["contact_notes"])
FREEMAIL: tuple[str, ...] = tuple(_crm["freemail"])

_erp = load_data("erp.yaml")
ERP_SCHEMA: str = _erp["schema"]
PRODUCTS = tuple(
    Product(p["sku"], p["name"], p["category"], float(p["price_usd"]), p["description"])
    for p in _erp["products"]
)
QUANTITIES: dict[str, tuple[int, int]] = {
    p["sku"]: tuple(p["order_quantity"]) for p in _erp["products"]
}
ORDER_MIX: dict[str, int] = _erp["order_mix"]

_placeholders = load_data("placeholders.yaml")
MONTHS: tuple[str, ...] = tuple(_placeholders["months"])
SITES: tuple[str, ...] = tuple(_placeholders["sites"])
SENSOR_NAMES: tuple[str, ...] = tuple(_placeholders["sensors"])
SERIAL_PREFIX: dict[str, str] = _placeholders["serial_prefixes"]
DASHBOARDS: tuple[str, ...] = tuple(_placeholders["dashboards"])
RULES: tuple[str, ...] = tuple(_placeholders["rules"])

_cases = load_data("cases.yaml")
# (subject, sentence, ...)
CASE_PROBLEMS: tuple[tuple[str, ...], ...] = tuple(
    (p["subject"], *p["body"]) for p in _cases["problems"]
)
CASE_PHONE_LINES: tuple[str, ...] = tuple(_cases["phone_lines"])
CASE_EMAIL_LINES: tuple[str, ...] = tuple(_cases["email_lines"])
CASE_CLOSERS: tuple[str, ...] = tuple(_cases["closers"])

_EVERYONE = tuple(username for username, *_, team in EMPLOYEES if team != "bot")


def _channel(spec: dict[str, Any]) -> ChannelPlan:
    script = load_data(f"slack/{spec['name']}.yaml")
    low, high = spec["volume"]
    return ChannelPlan(
        name=spec["name"],
        private=spec["private"],
        members=_EVERYONE if spec["members"] == "everyone" else tuple(spec["members"]),
        purpose=spec["purpose"],
        topic=spec["topic"],
        volume=(low, high),
        joins=tuple(spec.get("joins", ())),
        threads=tuple(_said(thread) for thread in script["threads"]),
        singles=_said(script["singles"]),
    )


CHANNELS = tuple(_channel(spec) for spec in load_data("slack/channels.yaml"))

_kb = load_data("kb.yaml")
_published_as = {stem: kind for kind in ("html", "pdf") for stem in _kb[kind]}
# (file name in the knowledge base, Markdown source)
ARTICLES = tuple(
    (f"{path.stem}.{_published_as.get(path.stem, 'md')}", path.read_text(encoding="utf-8"))
    for path in sorted((DATA / "kb").glob("*.md"))
)
KB_ACL: dict[str, object] = _kb["acl"]
HTML_PAGE: str = _kb["html_page"]

BRAND_VOICE = read_data("marketing/brand-voice.md")
# (file name, email)
CAMPAIGNS = tuple(
    (path.name, path.read_text(encoding="utf-8"))
    for path in sorted((DATA / "marketing" / "campaigns").glob("*.md"))
)
README = read_data("README.md")
