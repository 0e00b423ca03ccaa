"""The service-reply app: a support case and the knowledge articles the agent may read
give a draft reply that cites the articles, and a suggested next step.

The case is read as the agent (their ACL); the articles are retrieved as the agent; both
reach the model as numbered sources marked as data, so instructions inside a customer's
message are never obeyed (and a poisoned one is withheld). The reply's support by its
sources is scored by the pipeline's groundedness check.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from bastion.apps import AppRun, AppSpec
from bastion.errors import BadRequest
from bastion.plugins import hookimpl
from bastion.plugins.hookspecs import Register

RELEVANT_ARTICLES = Path(__file__).with_name("relevant_articles.yaml")
_CITED = re.compile(r"\[(\d+)\]")
_NEXT_STEP = re.compile(r"^\W*next step\W*[:\-]\s*(.+)$", re.IGNORECASE | re.MULTILINE)


class ServiceReplySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    case_source: str = Field("support-cases", description="Source holding the support cases.")
    knowledge_sources: list[str] = Field(
        default_factory=lambda: ["kb"], description="Sources of the knowledge articles."
    )
    articles: int = Field(3, ge=1, le=10, description="Articles shown to the model.")
    max_tokens: int = Field(220, ge=32, le=2000, description="Longest reply generated.")


class ReplyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    case: str = Field(min_length=1, description="The case id, e.g. CS-5001.")
    note: str | None = Field(
        None, max_length=2000, description="The agent's own instruction (tone, what to offer)."
    )


class Citation(BaseModel):
    n: int = Field(description="The number the reply cites it by, [n].")
    source: str
    record_id: str
    title: str


class ServiceReply(BaseModel):
    case: str
    subject: str
    reply: str = Field(description="The draft reply to the customer.")
    next_step: str = Field(description="What the agent should do next.")
    articles: list[Citation] = Field(description="The articles the model was shown.")
    cited: list[int] = Field(description="The article numbers the reply cites.")
    citations_placed: bool = Field(
        description="The model cited nothing, so each [n] was placed after a sentence the "
        "support check found in article n."
    )
    support: float | None = Field(description="Share of the reply its sources support (0-1).")
    withheld: list[str] = Field(description="Sources a guard kept from the model, and why.")
    trace_id: str = Field(description="The audit record of the model call.")


INSTRUCTION = (
    "You draft replies for a support agent. Write a short, polite reply to the customer of "
    "source [1] (their support case), following the agent's request. Use the knowledge "
    "articles, cite each one you use like [2], and do not promise what they do not say. End "
    "with one line: 'Next step: ...' for the support agent."
)


def reply(run: AppRun, given: ReplyRequest) -> ServiceReply:
    settings: ServiceReplySettings = run.settings
    case = run.platform.grounding.record(run.principal, settings.case_source, given.case)
    if case.entity != "interaction":
        raise BadRequest(f"'{given.case}' in {settings.case_source} is not a case")
    subject = str(case.fields.get("subject") or case.title)
    run.progress(1, 3, "finding articles")
    hits = run.search(
        f"{subject}\n{case.fields.get('body') or case.text}",
        k=settings.articles,
        sources=settings.knowledge_sources,
    )
    case_source = run.material(given.case, case.title, case.text, source=settings.case_source)
    run.progress(2, 3, "drafting the reply")
    done = run.ask(
        given.note or "Draft the reply.",  # the agent's words: checked like any prompt
        instructions=INSTRUCTION,
        sources=[case_source, *(h.chunk for h in hits)],
        max_tokens=settings.max_tokens,
        score_support=True,
    )
    run.progress(3, 3, "done")
    shown = {c["n"]: c for c in done.bastion.get("citations", [])}
    if 1 not in shown:
        reasons = "; ".join(_withheld(done.bastion)) or "no reason given"
        raise BadRequest(
            f"case {given.case} was withheld by a guard ({reasons}); read it yourself first"
        )
    articles = [
        Citation(n=n, source=c["source"], record_id=c["record_id"], title=c["title"])
        for n, c in sorted(shown.items())
        if n != 1
    ]
    text, next_step = _split_next_step(done.text)
    numbers = {a.n for a in articles}
    cited = sorted({int(n) for n in _CITED.findall(text)} & numbers)
    placed = not cited
    if placed:  # the model cited nothing: cite what the support check matched
        text = _place_citations(text, done.bastion.get("attribution", []), numbers)
        cited = sorted({int(n) for n in _CITED.findall(text)} & numbers)
    return ServiceReply(
        case=given.case,
        subject=subject,
        reply=text,
        next_step=next_step or _default_next_step(articles),
        articles=articles,
        cited=cited,
        citations_placed=placed and bool(cited),
        support=done.bastion.get("support"),
        withheld=_withheld(done.bastion),
        trace_id=done.trace_id,
    )


def _place_citations(text: str, attribution: list[dict[str, Any]], articles: set[int]) -> str:
    """`text` with [n] after each sentence the support check found in article n (the
    case itself, source 1, is not cited to the customer)."""
    for found in attribution:
        if found["source"] not in articles:
            continue
        at = text.find(found["sentence"])
        if at >= 0:
            end = at + len(found["sentence"])
            end -= text[end - 1] in ".!?"  # before the sentence's full stop
            text = f"{text[:end]} [{found['source']}]{text[end:]}"
    return text


def _split_next_step(text: str) -> tuple[str, str | None]:
    """The reply without its 'Next step:' line, and that line's content."""
    found = _NEXT_STEP.search(text)
    if found is None:
        return text.strip(), None
    return (text[: found.start()] + text[found.end() :]).strip(), found.group(1).strip()


def _default_next_step(articles: list[Citation]) -> str:
    if not articles:
        return "No article matched: escalate the case to the product team."
    return f"Check the reply against “{articles[0].title}”, send it, and await the answer."


def _withheld(bastion: dict[str, object]) -> list[str]:
    trust = bastion.get("trust")
    verdicts = trust.get("verdicts", []) if isinstance(trust, dict) else []
    return [
        f"{v['guard']}: {f['detail']}"
        for v in verdicts
        for f in v["findings"]
        if f["kind"] == "withheld_source"
    ]


def score(output: ServiceReply, expected: dict[str, Any]) -> dict[str, float | None]:
    """Against `expected["articles"]` (the names of the articles that answer the case):
    the share of cited articles that are relevant, whether anything was cited (and
    whether the citations were placed by the support check), the share of relevant
    articles the model was shown, and the reply's support by its sources."""
    relevant = set(expected.get("articles", []))
    shown = {a.n: a.record_id.rsplit(".", 1)[0] for a in output.articles}
    cited = [shown[n] for n in output.cited]
    return {
        "citation_precision": sum(c in relevant for c in cited) / len(cited) if cited else None,
        "cites_an_article": 1.0 if cited else 0.0,
        "citations_placed": 1.0 if output.citations_placed else 0.0,
        "retrieval_recall": len(relevant & set(shown.values())) / len(relevant)
        if relevant
        else None,
        "support": output.support,
    }


def demo_cases(cases: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Evaluation cases for the demo company's support cases, given as (id, subject):
    each with the articles that answer it (relevant_articles.yaml)."""
    labels = yaml.safe_load(RELEVANT_ARTICLES.read_text(encoding="utf-8"))
    patterns = [
        (re.compile("^" + ".*".join(map(re.escape, p.split("{}"))) + "$"), articles)
        for p, articles in labels.items()
    ]
    rows = []
    for case_id, subject in cases:
        articles = next((a for pattern, a in patterns if pattern.match(subject)), None)
        if articles is not None:
            rows.append(
                {"id": case_id, "input": {"case": case_id}, "expected": {"articles": articles}}
            )
    return rows


def markdown(output: ServiceReply) -> str:
    articles = "\n".join(f"- [{a.n}] {a.title} ({a.source}:{a.record_id})" for a in output.articles)
    return (
        f"## Reply to {output.case}: {output.subject}\n\n{output.reply}\n\n"
        f"**Next step**: {output.next_step}\n\n## Articles shown\n\n{articles or '- (none)'}"
    )


@hookimpl
def register_apps(register: Register) -> None:
    register(
        AppSpec(
            name="service-reply",
            description="a draft reply to a support case, citing the knowledge articles",
            settings=ServiceReplySettings,
            input=ReplyRequest,
            output=ServiceReply,
            run=reply,
            markdown=markdown,
            score=score,
        )
    )
