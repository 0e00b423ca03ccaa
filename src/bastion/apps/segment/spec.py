"""What a segment is: filters over the canonical entities (accounts, contacts, orders,
support cases), the values they may take, and how one reads in plain words.

A specification is what the model writes (under a JSON schema enforced while decoding)
and what `query.py` turns into SQL. Its categorical values come from the data the person
may read (`Catalogue`), so a model can only name an industry, region or product that
exists; the schema a request is decoded under allows only the values the request names.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Filter(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Window(_Filter):
    """A time window: the last `within_days` days before the segment's date, or dates."""

    within_days: int | None = Field(None, ge=1, le=3650)
    since: date | None = None
    until: date | None = None

    def bounds(self, today: date) -> tuple[date | None, date | None]:
        since = self.since
        if self.within_days is not None:
            start = today - timedelta(days=self.within_days)
            since = max(since, start) if since else start
        return since, self.until

    def describe(self, today: date) -> str:
        if self.within_days is not None:
            return f"in the {self.within_days} days before {today.isoformat()}"
        if self.since and self.until:
            return f"between {self.since.isoformat()} and {self.until.isoformat()}"
        if self.since:
            return f"since {self.since.isoformat()}"
        if self.until:
            return f"until {self.until.isoformat()}"
        return ""


class AccountFilter(_Filter):
    industry: list[str] = []
    region: list[str] = []
    tier: list[str] = []
    min_revenue_usd: float | None = Field(None, ge=0)
    max_revenue_usd: float | None = Field(None, ge=0)

    def empty(self) -> bool:
        return self == AccountFilter()


class ContactFilter(_Filter):
    job_title: list[str] = []  # words, any of which the job title contains
    has_email: bool | None = None

    def empty(self) -> bool:
        return self == ContactFilter()


class OrderFilter(Window):
    has: bool = True  # False: contacts with no such order
    product: list[str] = []
    status: list[str] = []
    min_total_usd: float | None = Field(None, ge=0)


class CaseFilter(Window):
    has: bool = True  # False: contacts with no such case
    status: list[str] = []
    priority: list[str] = []
    about: list[str] = []  # words, any of which the case's subject or text contains


class SegmentSpec(_Filter):
    """Contacts whose account, own fields, orders and support cases match every filter
    given (values within one filter: any of them)."""

    account: AccountFilter = AccountFilter()
    contact: ContactFilter = ContactFilter()
    orders: OrderFilter | None = None
    cases: CaseFilter | None = None

    @model_validator(mode="after")
    def _ranges(self) -> SegmentSpec:
        a = self.account
        if a.min_revenue_usd and a.max_revenue_usd and a.min_revenue_usd > a.max_revenue_usd:
            raise ValueError("account.min_revenue_usd is above account.max_revenue_usd")
        for name, window in (("orders", self.orders), ("cases", self.cases)):
            if window and window.since and window.until and window.since > window.until:
                raise ValueError(f"{name}.since is after {name}.until")
        return self

    def empty(self) -> bool:
        return self.account.empty() and self.contact.empty() and not self.orders and not self.cases


# The categorical fields whose values come from the data: (filter, field) -> what it is.
CATEGORIES: dict[tuple[str, str], str] = {
    ("account", "industry"): "account industry",
    ("account", "region"): "account region",
    ("account", "tier"): "account tier",
    ("orders", "product"): "product ordered",
    ("orders", "status"): "order status",
    ("cases", "status"): "case status",
    ("cases", "priority"): "case priority",
}


@dataclass(frozen=True)
class Catalogue:
    """The values each categorical field takes in the records the person may read."""

    values: dict[tuple[str, str], tuple[str, ...]]

    def named_in(self, request: str) -> dict[tuple[str, str], list[str]]:
        """The values the request names (schema linking): a value is named when its words
        appear in order ("food and beverage" names Food & Beverage, "pharmaceutical" names
        Pharmaceuticals); a product also by its first word alone ("PowerTap" names PowerTap
        E1, "EdgeGateway" each EdgeGateway). "Nordics" names nothing."""
        words = _words(request)
        found: dict[tuple[str, str], list[str]] = {}
        for key, values in self.values.items():
            full = [v for v in values if _names(words, _words(v))]
            # "EdgeGateway G2" is inside "EdgeGateway G2 Rugged": keep the longest only.
            named = [v for v in full if not any(v != o and v in o for o in full)]
            if key == ("orders", "product"):
                firsts = {_words(v)[0] for v in full}
                named += [
                    v
                    for v in values
                    if v not in full
                    and len(first := _words(v)[0]) >= 5
                    and first not in firsts
                    and _names(words, [first])
                ]
            found[key] = sorted(named)
        return found


_FILLER = {"and", "of", "the", "per"}


def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _FILLER]


def _names(request_words: list[str], wanted: list[str]) -> bool:
    if not wanted:
        return False
    for start in range(len(request_words) - len(wanted) + 1):
        window = request_words[start : start + len(wanted)]
        if all(_same_word(w, r) for w, r in zip(wanted, window, strict=True)):
            return True
    return False


def _same_word(value_word: str, request_word: str) -> bool:
    """Equal, or the same word inflected ("pharmaceutical" for Pharmaceuticals,
    "manufacturer" for Manufacturing): a shared stem of five letters or more, or a plural."""
    if value_word == request_word or value_word.isdigit() or request_word.isdigit():
        return value_word == request_word
    stem = 5
    if len(value_word) >= stem and len(request_word) >= stem:
        return value_word[:stem] == request_word[:stem] and (
            abs(len(value_word) - len(request_word)) <= 4
        )
    return request_word.rstrip("s") == value_word.rstrip("s")


# Words of a request that say what a segment is rather than name a value; what is left
# of a request without them is what a free-text filter (a topic, a job title) may use.
_VOCABULARY_WORDS = """a about account accounts all an and any are as at based bought buy by
case cases client
clients company companies contact contacts customer customers day days did do does email
emails for from had has have in is last least less month months more most never no not
of on one or order ordered orders our over past people person persons placed priority
purchased recent recently region revenue since status support than that the their them
they this ticket tickets tier to under until us usd week weeks were which who whose with
within without year years every everyone opened asked"""
VOCABULARY = frozenset(_VOCABULARY_WORDS.split())
_NEGATIONS = {"no", "never", "not", "without", "didn", "don", "hasn", "haven", "none"}
_UNITS = {"day": 1, "week": 7, "month": 30, "quarter": 90, "year": 365}
_NUMBERS_IN_WORDS = "zero one two three four five six seven eight nine ten eleven twelve"
_NUMBER_WORDS = {word: n for n, word in enumerate(_NUMBERS_IN_WORDS.split())}


@dataclass(frozen=True)
class RequestTerms:
    """What a request allows the free fields of its specification to hold: its own words
    and phrases, the day counts, amounts and dates it states, and whether it negates or
    mentions email at all. The model may choose among these, never add to them."""

    phrases: list[str]  # its words and two-word phrases (stemmed), segment vocabulary out
    days: list[int]
    amounts: list[float]
    dates: list[str]
    negates: bool
    email: bool
    relations: frozenset[str] = frozenset({"orders", "cases"})  # the ones it speaks of

    @classmethod
    def of(
        cls, request: str, named: dict[tuple[str, str], list[str]] | None = None
    ) -> RequestTerms:
        """`named`: the data values the request names; their words are not free text,
        except products' (a case may be about a product)."""
        low = request.lower()
        words = re.findall(r"[a-z0-9]+", low)
        valued = {
            w
            for key, values in (named or {}).items()
            if key != ("orders", "product")
            for v in values
            for w in _words(v)
        }

        def free(word: str) -> bool:
            return not (
                word in VOCABULARY
                or word in _FILLER
                or word.isdigit()
                or any(_same_word(v, word) for v in valued)
            )

        plain = [w if free(w) else "" for w in words]
        phrases = [w for w in plain if w] + [
            f"{a} {b}" for a, b in itertools.pairwise(plain) if a and b
        ]
        days = set()
        for count, unit in re.findall(r"\b(\d+|[a-z]+)[ -](day|week|month|quarter|year)s?\b", low):
            n = int(count) if count.isdigit() else _NUMBER_WORDS.get(count, 1)
            days.add(n * _UNITS[unit])
        amounts = set()
        # An amount: a number that is not a count of days, weeks... and not a year or date.
        money = (
            r"(?<![\w.-])(\$?)(\d[\d,]*(?:\.\d+)?) ?(k|m|million|thousand)?\b"
            r"(?! ?-?\d)(?! ?(?:day|week|month|quarter|year))"
        )
        for dollar, number, scale in re.findall(money, low):
            if not dollar and re.fullmatch(r"(?:19|20)\d\d", number):
                continue
            value = float(number.replace(",", ""))
            value *= {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6}.get(scale, 1)
            if value >= 1:
                amounts.add(value)
        dates = set()
        for iso in re.findall(r"\b(\d{4}-\d{2}-\d{2})\b", low):
            try:
                day = date.fromisoformat(iso)
            except ValueError:
                continue
            dates |= {day.isoformat(), (day - timedelta(days=1)).isoformat()}
        for year in re.findall(r"(?<![\d-])((?:19|20)\d\d)(?![\d-])", low):
            dates |= {f"{year}-01-01", f"{year}-12-31"}
        return cls(
            phrases=list(dict.fromkeys(stem(p) for p in phrases)),  # as filters match
            days=sorted(days),
            amounts=sorted(amounts),
            dates=sorted(dates),
            negates=bool(_NEGATIONS & set(words)) or "n't" in low,
            email=bool({"email", "emails", "mail"} & set(words)),
            relations=frozenset(
                relation
                for relation, cues in _RELATION_CUES.items()
                if cues & set(words)
                or any(part == relation and values for (part, _), values in (named or {}).items())
            ),
        )


# Words that speak of orders or of support cases: without one (or a value of theirs named),
# a request puts no filter on them (a small model otherwise adds "with a support case").
_RELATION_CUES = {
    "orders": {
        "order", "orders", "ordered", "ordering", "bought", "buy", "buys", "buying", "buyer",
        "buyers", "purchase", "purchased", "purchases", "purchasing", "spent", "spend",
        "spending", "customers",
    },
    "cases": {
        "case", "cases", "ticket", "tickets", "support", "complaint", "complaints", "issue",
        "issues", "problem", "problems", "escalation", "escalated", "incident", "incidents",
    },
}  # fmt: skip


def decoding_schema(named: dict[tuple[str, str], list[str]], terms: RequestTerms) -> dict[str, Any]:
    """The JSON schema a request's specification is decoded under: every key present, in
    a fixed order (easier for a small model than optional ones), each categorical list
    limited to the values the request names, and each free field to what the request
    states (`RequestTerms`): a filter the request does not mention cannot be written."""

    def pick(filter_name: str, field: str) -> dict[str, Any]:
        return choose(named.get((filter_name, field), []))

    def choose(values: list[Any], most: int | None = None) -> dict[str, Any]:
        if not values:
            return {"const": []}
        return {"type": "array", "items": {"enum": values}, "maxItems": most or len(values)}

    def one_of(values: list[Any]) -> dict[str, Any]:
        return {"enum": [*values, None]} if values else {"const": None}

    number = one_of(terms.amounts)
    words = choose(terms.phrases, 3)

    def window(name: str, extra: dict[str, Any]) -> dict[str, Any]:
        if name not in terms.relations:
            return {"type": "null"}
        properties = {
            "has": {"type": "boolean"} if terms.negates else {"const": True},
            **extra,
            "within_days": one_of(terms.days),
            "since": one_of(terms.dates),
            "until": one_of(terms.dates),
        }
        body = {
            "type": "object",
            "properties": properties,
            "required": list(properties),
            "additionalProperties": False,
        }
        return {"anyOf": [body, {"type": "null"}]}

    def obj(properties: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": properties,
            "required": list(properties),
            "additionalProperties": False,
        }

    return obj(
        {
            "account": obj(
                {
                    "industry": pick("account", "industry"),
                    "region": pick("account", "region"),
                    "tier": pick("account", "tier"),
                    "min_revenue_usd": number,
                    "max_revenue_usd": number,
                }
            ),
            "contact": obj(
                {
                    "job_title": words,
                    "has_email": {"type": ["boolean", "null"]} if terms.email else {"const": None},
                }
            ),
            "orders": window(
                "orders",
                {
                    "product": pick("orders", "product"),
                    "status": pick("orders", "status"),
                    "min_total_usd": number,
                },
            ),
            "cases": window(
                "cases",
                {
                    "status": pick("cases", "status"),
                    "priority": pick("cases", "priority"),
                    "about": words,
                },
            ),
        }
    )


def stem(phrase: str) -> str:
    """A phrase's words lower-cased without their inflection ("pairing sensors" -> "pair
    sensor"), so a filter on words matches the other forms of them too."""
    words = []
    for word in phrase.lower().split():
        for suffix in ("ing", "ed", "es", "s"):
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                word = word[: -len(suffix)]
                break
        words.append(word)
    return " ".join(words)


def normalized(spec: SegmentSpec) -> dict[str, Any]:
    """A specification in a canonical form (only what it sets, lists sorted, words
    stemmed), so two that mean the same compare equal."""
    data = spec.model_dump(mode="json", exclude_defaults=True)
    for part in data.values():
        for key, value in part.items():
            if isinstance(value, list):
                words = key in ("job_title", "about")
                part[key] = sorted({stem(v) if words else v for v in value})
    return data


def unbounded_to_null(data: Any) -> Any:
    """A decoded specification with the numbers a grammar could not bound made null: no
    window of zero days, no minimum of zero, nothing negative (what a small model writes
    for "not given" where null is right)."""
    if not isinstance(data, dict):
        return data
    for part in data.values():
        if not isinstance(part, dict):
            continue
        for key in ("within_days", "min_revenue_usd", "max_revenue_usd", "min_total_usd"):
            value = part.get(key)
            floor = 0 if key == "max_revenue_usd" else 1  # a bound of 0 bounds nothing
            if isinstance(value, int | float) and value < floor:
                part[key] = None
    return data


def _any(values: Iterable[str]) -> str:
    items = list(values)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _usd(value: float) -> str:
    return f"{value:,.0f} USD"


def explain(spec: SegmentSpec, today: date) -> str:
    """The specification in plain words (written from it, not by the model)."""
    if spec.empty():
        return "No filter: the request named nothing this segment can select on."
    parts: list[str] = []
    a = spec.account
    account = []
    if a.industry:
        account.append(f"in {_any(a.industry)}")
    if a.region:
        account.append(f"in the {_any(a.region)} region")
    if a.tier:
        account.append(f"of tier {_any(a.tier)}")
    if a.min_revenue_usd is not None:
        account.append(f"with annual revenue of at least {_usd(a.min_revenue_usd)}")
    if a.max_revenue_usd is not None:
        account.append(f"with annual revenue of at most {_usd(a.max_revenue_usd)}")
    if account:
        parts.append("at accounts " + ", ".join(account))
    c = spec.contact
    if c.job_title:
        parts.append("whose job title mentions " + _any(f"'{w}'" for w in c.job_title))
    if c.has_email is not None:
        parts.append("with an email address" if c.has_email else "without an email address")
    if spec.orders is not None:
        o = spec.orders
        what = f"an order of {_any(o.product)}" if o.product else "an order"
        more = [f"with status {_any(o.status)}"] if o.status else []
        if o.min_total_usd is not None:
            more.append(f"worth at least {_usd(o.min_total_usd)}")
        if window := o.describe(today):
            more.append(window)
        clause = " ".join([what, *more])
        parts.append("who placed " + (clause if o.has else "no " + clause.removeprefix("an ")))
    if spec.cases is not None:
        k = spec.cases
        case = ["a support case"]
        if k.status:
            case.append(f"with status {_any(k.status)}")
        if k.priority:
            case.append(f"of {_any(k.priority)} priority")
        if k.about:
            case.append("about " + _any(f"'{w}'" for w in k.about))
        if window := k.describe(today):
            case.append(f"opened {window}")
        clause = " ".join(case)
        parts.append("with " + (clause if k.has else "no " + clause.removeprefix("a ")))
    return "Contacts " + "; ".join(parts) + "."
