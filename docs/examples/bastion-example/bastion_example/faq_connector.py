"""A connector: a FAQ text file ("Q: ..." lines, each followed by its answer) becomes one
document per question."""

from __future__ import annotations

from pathlib import Path

from bastion.config import SourceConfig
from bastion.grounding.connectors import ConnectorSpec, Records, source_file
from bastion.grounding.records import Skipped, SourceRecord
from bastion.plugins import hookimpl
from bastion.plugins.hookspecs import Register


def read_faq(cfg: SourceConfig, home: Path) -> Records:
    path = source_file(cfg, home)  # a clear ConfigError when it is missing
    blocks = path.read_text(encoding=cfg.encoding).split("Q:")[1:]
    for n, block in enumerate(blocks, 1):
        question, _, answer = block.strip().partition("\n")
        if not answer.strip():
            yield Skipped(f"{path.name} question {n}", "a question with no answer")
            continue
        text = f"{question}\n{answer.strip()}"
        acl = tuple(cfg.acl or ())
        yield SourceRecord(cfg.tenant, cfg.name, f"q{n}", "document", question, text, acl=acl)


@hookimpl
def register_connectors(register: Register) -> None:
    register(
        ConnectorSpec(
            name="faq",
            description="a FAQ text file, one document per 'Q:' question",
            needs=("path",),
            read=read_faq,
        )
    )
