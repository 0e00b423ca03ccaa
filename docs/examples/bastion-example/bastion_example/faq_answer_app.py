"""An app: answers a question from the FAQ entries the asking person may read, citing
them. Its model call goes through the whole pipeline (guards, audit) via `run.ask`."""

from __future__ import annotations

from pydantic import BaseModel, Field

from bastion.apps import AppRun, AppSpec
from bastion.plugins import hookimpl
from bastion.plugins.hookspecs import Register


class FaqSettings(BaseModel):  # apps[].settings of the faq-answer entry
    entries: int = Field(3, ge=1, le=10, description="FAQ entries shown to the model.")


class Question(BaseModel):
    question: str = Field(min_length=1)


class Answer(BaseModel):
    answer: str
    sources: list[str]  # the FAQ entries (chunk ids) the model was shown


def answer(run: AppRun, given: Question) -> Answer:
    hits = run.search(given.question, k=run.settings.entries)
    context = "\n\n".join(h.chunk.text for h in hits) or "(nothing found)"
    done = run.ask(f"FAQ:\n{context}\n\nQuestion: {given.question}")
    return Answer(answer=done.text, sources=[h.chunk.id for h in hits])


@hookimpl
def register_apps(register: Register) -> None:
    register(
        AppSpec(
            name="faq-answer",
            description="answers a question from the FAQ, citing its entries",
            settings=FaqSettings,
            input=Question,
            output=Answer,
            run=answer,
        )
    )
