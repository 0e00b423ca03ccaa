"""Identity resolution: one Contact per person, however many sources mention them.

A CRM, a support tool, Slack and the order system each keep their own copy of a customer,
typed differently ("Jane.Doe+crm@Acme.com", "(415) 555-0134", "Doe, Jane"). Identifiers are
normalised here, then splink scores candidate pairs on DuckDB with a Fellegi-Sunter model whose
m/u probabilities are fixed priors instead of trained ones: EM on a few hundred records is
unstable, and fixed priors make every run reproducible and every decision explainable. Pairs
above the threshold are joined into clusters, and each cluster gets an id derived from its
smallest record key, so the same records always resolve to the same contact ids.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import phonenumbers
from rapidfuzz.distance import JaroWinkler

# Addresses a whole team reads: sharing one says nothing about being the same person.
ROLE_MAILBOXES = frozenset(
    {
        "accounts",
        "admin",
        "billing",
        "careers",
        "contact",
        "enquiries",
        "hello",
        "help",
        "hr",
        "info",
        "inquiries",
        "jobs",
        "marketing",
        "no-reply",
        "noreply",
        "office",
        "orders",
        "sales",
        "service",
        "support",
        "team",
        "webmaster",
    }
)

_TITLES = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "rev", "hon"})
_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv", "phd", "md", "esq", "mba", "cpa"})
# Lower-case surname particles stay with the surname: "Ludwig van Beethoven" -> "van beethoven".
_PARTICLES = frozenset({"van", "von", "de", "der", "den", "da", "di", "du", "del", "la", "le"})
_JOINERS = re.compile(r"['’`\-‐‑–]")  # O'Brien, Smith-Jones: one word, not two
_SEPARATORS = re.compile(r"[\W_]+")
_EMAIL = re.compile(r"^([^@\s]+)@([^@\s]+\.[^@\s.]+)$")

# Fixed Fellegi-Sunter priors. m = P(level | same person), u = P(level | different people);
# each list runs from the exact level to the "else" level. They were chosen so that, at the
# default threshold of 0.9: a shared personal email merges on its own; a shared phone needs
# a name that agrees; a shared address or phone with a clearly different first name (a
# household sharing a mailbox or a landline) does not merge; names never merge on their own.
_PRIOR_SAME_PERSON = 1e-4
_EMAIL_M, _EMAIL_U = [0.85, 0.15], [2e-6, 1 - 2e-6]
_PHONE_M, _PHONE_U = [0.70, 0.30], [1e-4, 1 - 1e-4]
_NAME_THRESHOLDS = [0.92, 0.8]
_FIRST_M, _FIRST_U = [0.88, 0.08, 0.038, 0.002], [0.01, 0.002, 0.02, 0.968]
# Surnames change (marriage) far more often than first names, so disagreement costs less.
_LAST_M, _LAST_U = [0.88, 0.08, 0.03, 0.01], [0.01, 0.001, 0.02, 0.969]


@dataclass(frozen=True)
class PersonRecord:
    """One mention of a person in one source; `key` is unique ("crm-contacts:C0012")."""

    key: str
    source: str
    first_name: str | None = None
    last_name: str | None = None
    full_name: str | None = None  # used when first/last are absent ("Dr. Jane Q. Doe")
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class Merge:
    """A contact built from several records, with why they were put together."""

    contact_id: str
    keys: tuple[str, ...]
    sources: tuple[str, ...]
    match_probability: float  # the weakest pairwise link inside the cluster
    evidence: tuple[str, ...]  # "email", "phone", "name" or "name~0.93" (weakest similarity)

    def as_dict(self) -> dict[str, object]:
        return {
            "contact_id": self.contact_id,
            "keys": list(self.keys),
            "sources": list(self.sources),
            "match_probability": self.match_probability,
            "evidence": list(self.evidence),
        }


@dataclass(frozen=True)
class Resolution:
    contact_of: dict[str, str]  # every input key -> its contact id
    merges: tuple[Merge, ...]  # multi-record contacts only, ordered by contact id

    def report(self) -> dict[str, object]:
        return {
            "records": len(self.contact_of),
            "contacts": len(set(self.contact_of.values())),
            "merged_records": sum(len(merge.keys) for merge in self.merges),
            "merges": [merge.as_dict() for merge in self.merges],
        }


def normalise_email(value: str | None) -> str | None:
    """Lower-cased address without "mailto:", display name or "+tag"; None if not an email."""
    if value is None:
        return None
    text = value.strip().lower()
    text = text.removeprefix("mailto:")
    if "<" in text and text.endswith(">"):  # "Jane Doe <jane@acme.com>"
        text = text[text.rindex("<") + 1 : -1]
    match = _EMAIL.match(text.strip().rstrip("."))
    if match is None:
        return None
    local = match.group(1).split("+", 1)[0]
    return f"{local}@{match.group(2)}" if local else None


def normalise_phone(value: str | None, default_region: str = "US") -> str | None:
    """E.164 form ("+14155550134"); numbers without a country code are read in default_region."""
    if value is None or not value.strip():
        return None
    try:
        number = phonenumbers.parse(value, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_name(
    first_name: str | None = None, last_name: str | None = None, full_name: str | None = None
) -> tuple[str | None, str | None]:
    """(first, last), case-folded, without accents, punctuation, titles or middle initials.

    first_name and last_name win; full_name fills whichever is missing and may be written
    "Dr. Jane Q. Doe" or "Doe, Jane" (middle names are dropped, surname particles kept).
    """
    first_tokens = _strip_affixes(_words(first_name))
    # Middle initials ("Jane Q.") vary between sources; a leading initial is all we have.
    first = " ".join(first_tokens[:1] + [t for t in first_tokens[1:] if len(t) > 1]) or None
    last = " ".join(_strip_affixes(_words(last_name))) or None
    if (first is None or last is None) and full_name:
        parsed_first, parsed_last = _split_full_name(full_name)
        first = first or parsed_first
        last = last or parsed_last
    return first, last


def _words(value: str | None) -> list[str]:
    if not value:
        return []
    folded = unicodedata.normalize("NFKD", value.casefold())
    plain = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return _SEPARATORS.sub(" ", _JOINERS.sub("", plain)).split()


def _strip_affixes(tokens: list[str]) -> list[str]:
    start, end = 0, len(tokens)
    while start < end and tokens[start] in _TITLES:
        start += 1
    while end > start and tokens[end - 1] in _SUFFIXES:
        end -= 1
    return tokens[start:end]


def _split_full_name(full_name: str) -> tuple[str | None, str | None]:
    head, comma, tail = full_name.partition(",")
    given = _strip_affixes(_words(tail))
    if comma and given:  # "Doe, Jane Q." (but not "Jane Doe, PhD": nothing left after affixes)
        family = _strip_affixes(_words(head))
        return given[0], " ".join(family) or None
    tokens = _strip_affixes(_words(head))
    if len(tokens) < 2:
        return (tokens[0] if tokens else None), None
    start = len(tokens) - 1
    while start > 1 and tokens[start - 1] in _PARTICLES:
        start -= 1
    return tokens[0], " ".join(tokens[start:])


_Link = tuple[str, str, float]  # two record keys and their match probability


@dataclass(frozen=True)
class _Normalised:
    key: str
    source: str
    first_name: str | None
    last_name: str | None
    email: str | None  # None for role mailboxes: they identify a team, not a person
    phone: str | None


def resolve(
    people: Sequence[PersonRecord], *, threshold: float = 0.9, default_region: str = "US"
) -> Resolution:
    """Group records that describe the same person into contacts.

    Two records are linked when splink's match probability reaches `threshold` and they
    share a normalised email or phone, so a name alone never merges anyone, whatever the
    threshold; records with neither stay on their own. An identical email is not a hard rule:
    it is strong enough to merge by itself, but a clearly different first name outweighs it
    (a couple sharing a family mailbox), and role mailboxes (info@, sales@, ...) count for
    nothing. Linked records form clusters transitively. The result does not depend on input
    order. Raises ValueError on duplicate keys or a threshold outside (0, 1).
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
    keys = [person.key for person in people]
    if len(set(keys)) != len(keys):
        raise ValueError("record keys must be unique")
    records = {
        person.key: _normalise(person, default_region)
        for person in sorted(people, key=lambda p: p.key)
    }
    linkable = [r for r in records.values() if r.email is not None or r.phone is not None]
    pairs = _scored_pairs(linkable, threshold) if len(linkable) > 1 else []
    links = [
        (left, right, probability)
        for left, right, probability in pairs
        if probability >= threshold and _shared_identifiers(records[left], records[right])
    ]
    return _cluster(records, links)


def _normalise(person: PersonRecord, default_region: str) -> _Normalised:
    first, last = normalise_name(person.first_name, person.last_name, person.full_name)
    email = normalise_email(person.email)
    if email is not None and email.split("@", 1)[0] in ROLE_MAILBOXES:
        email = None
    return _Normalised(
        person.key, person.source, first, last, email, normalise_phone(person.phone, default_region)
    )


def _scored_pairs(records: list[_Normalised], threshold: float) -> list[_Link]:
    import pyarrow as pa
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    columns = ("first_name", "last_name", "email", "phone")
    table = pa.table(
        {
            "unique_id": pa.array([r.key for r in records], pa.string()),
            **{c: pa.array([getattr(r, c) for r in records], pa.string()) for c in columns},
        }
    )
    settings = SettingsCreator(
        link_type="dedupe_only",
        probability_two_random_records_match=_PRIOR_SAME_PERSON,
        comparisons=[
            cl.ExactMatch("email").configure(m_probabilities=_EMAIL_M, u_probabilities=_EMAIL_U),
            cl.ExactMatch("phone").configure(m_probabilities=_PHONE_M, u_probabilities=_PHONE_U),
            cl.JaroWinklerAtThresholds("first_name", _NAME_THRESHOLDS).configure(
                m_probabilities=_FIRST_M, u_probabilities=_FIRST_U
            ),
            cl.JaroWinklerAtThresholds("last_name", _NAME_THRESHOLDS).configure(
                m_probabilities=_LAST_M, u_probabilities=_LAST_U
            ),
        ],
        # Only pairs sharing an identifier can be linked, so only those are worth scoring.
        blocking_rules_to_generate_predictions=[block_on("email"), block_on("phone")],
        retain_matching_columns=False,
    )
    linker = Linker(DuckDBAPI().register(table), settings, log_level=None)
    # A hair below the threshold so SQL rounding cannot drop a borderline pair; the caller
    # applies the exact threshold.
    weight = math.log2(threshold / (1 - threshold)) - 1e-6
    scored = linker.inference.predict(threshold_match_weight=weight, warning_mode="never")
    rows: list[dict[str, Any]] = scored.as_record_list()
    return [
        (str(row["unique_id_l"]), str(row["unique_id_r"]), float(row["match_probability"]))
        for row in rows
    ]


def _shared_identifiers(left: _Normalised, right: _Normalised) -> list[str]:
    shared = []
    if left.email is not None and left.email == right.email:
        shared.append("email")
    if left.phone is not None and left.phone == right.phone:
        shared.append("phone")
    return shared


def _name_similarity(left: _Normalised, right: _Normalised) -> float | None:
    scores = [
        JaroWinkler.similarity(a, b)
        for a, b in ((left.first_name, right.first_name), (left.last_name, right.last_name))
        if a is not None and b is not None
    ]
    return sum(scores) / len(scores) if scores else None


def _cluster(records: dict[str, _Normalised], links: list[_Link]) -> Resolution:
    parent = {key: key for key in records}

    def root(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for left, right, _ in links:
        a, b = root(left), root(right)
        if a != b:
            # The smaller key becomes the root, so the root is the cluster's smallest key.
            parent[max(a, b)] = min(a, b)
    members: dict[str, list[str]] = {}
    for key in records:  # sorted, so each member list is sorted too
        members.setdefault(root(key), []).append(key)
    links_of: dict[str, list[_Link]] = {}
    for link in links:
        links_of.setdefault(root(link[0]), []).append(link)

    merges = []
    for smallest, keys in members.items():
        if len(keys) > 1:
            cluster_links = links_of[smallest]
            merges.append(
                Merge(
                    contact_id=_contact_id(smallest),
                    keys=tuple(keys),
                    sources=tuple(sorted({records[k].source for k in keys})),
                    match_probability=min(p for _, _, p in cluster_links),
                    evidence=_evidence(records, cluster_links),
                )
            )
    return Resolution(
        contact_of={key: _contact_id(root(key)) for key in records},
        merges=tuple(sorted(merges, key=lambda m: m.contact_id)),
    )


def _evidence(records: dict[str, _Normalised], links: list[_Link]) -> tuple[str, ...]:
    shared: set[str] = set()
    similarities = []
    for left, right, _ in links:
        shared.update(_shared_identifiers(records[left], records[right]))
        similarity = _name_similarity(records[left], records[right])
        if similarity is not None:
            similarities.append(similarity)
    evidence: list[str] = [kind for kind in ("email", "phone") if kind in shared]
    if similarities:
        weakest = min(similarities)
        # Rounded down, so "name~0.99" is never printed for a pair that only reached 0.989.
        evidence.append("name" if weakest == 1.0 else f"name~{math.floor(weakest * 100) / 100:.2f}")
    return tuple(evidence)


def _contact_id(smallest_key: str) -> str:
    return "contact_" + hashlib.sha256(smallest_key.encode("utf-8")).hexdigest()[:12]
