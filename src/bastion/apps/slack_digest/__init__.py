"""`slack-digest`: a channel's summary, decisions, action items (owner, due date) and open
questions over a time window, from the harmonized Slack data or from an export.

    reading.py      the channel's threads the person may read, in the window
    finding.py      decisions, action items and questions by cue rules, citing messages
    dates.py        due dates as people write them ("by Friday", "EOD", "Jan 9")
    summarizing.py  the model's summary, batch by batch, then combined
    scoring.py      precision and recall of items against the labelled channels in eval/

The model writes only the summary; items come from rules so that each cites the exact
messages it comes from. A thread the guards withhold from the model (a prompt injection
in a message) gives no items either, and the summary says how many messages that was.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from bastion.apps import AppRun, AppSpec
from bastion.apps.slack_digest.finding import Found, find_items
from bastion.apps.slack_digest.reading import (
    ExportedSlack,
    SlackMessages,
    StoredSlack,
    Window,
    check_channel,
    export_path,
    stored_source,
)
from bastion.apps.slack_digest.schemas import (
    ActionItem,
    Cited,
    Digest,
    DigestInput,
    DigestSettings,
    Item,
    Owner,
)
from bastion.apps.slack_digest.scoring import case_scores
from bastion.apps.slack_digest.summarizing import Budget, Summarizer, batches, combining_calls
from bastion.errors import BadRequest
from bastion.plugins import hookimpl
from bastion.plugins.hookspecs import Register

MAX_SKIPPED_NAMED = 5  # the summary names this many unreadable files, then counts the rest


def digest(run: AppRun, given: DigestInput) -> Digest:
    settings: DigestSettings = run.settings
    platform = run.platform
    if given.export is not None:
        path = export_path(given.export, platform.home, settings.export_folders)
        # An export is held to the size limit the tenant's Slack sources are held to.
        limits = [
            s.max_file_mb
            for s in platform.config.sources
            if s.kind == "slack" and s.tenant == run.principal.tenant
        ]
        exported = ExportedSlack(path, run.principal, min(limits, default=None))
        try:
            return _digest(run, given, exported, settings)
        finally:
            exported.close()
    source = stored_source(platform.config, run.principal, given.source)
    return _digest(run, given, StoredSlack(platform.db, source, run.principal), settings)


def _digest(
    run: AppRun, given: DigestInput, messages: SlackMessages, settings: DigestSettings
) -> Digest:
    channel = given.channel
    check_channel(messages, channel)
    window = _window(given, messages, channel, settings.window_days)
    threads = sorted(
        (cut for t in messages.threads(channel) if (cut := window.cut(t)) is not None),
        key=lambda t: float(t.messages[0].ts),
    )
    count = sum(len(t.cited) for t in threads)
    if not threads:
        summary = f"No messages in #{channel} from {_day(window.since)} to {_last_day(window)}."
        return Digest(
            summary=summary + _skipped_note(messages),
            decisions=[],
            action_items=[],
            open_questions=[],
            messages=0,
        )

    budget = _budget(run, settings)
    leaves = sum(1 for _ in batches(threads, budget))  # batches are made again as they go
    total = leaves + combining_calls(leaves, budget.fanout)
    run.progress(0, total, f"read {count} messages in #{channel}")
    summarizer = Summarizer(run, channel, budget, total, run.progress, settings.parallel)
    partials: list[str] = []
    found: list[Found] = []
    withheld: set[str] = set()  # keys of threads a guard kept from the model
    numbered = enumerate(batches(threads, budget), 1)
    for batch, text, shown in summarizer.leaves(numbered, leaves):
        partials += [text] if text else []
        for part in batch:
            if part.key not in shown:
                withheld.add(part.thread.key)
            if part.last and part.thread.key not in withheld:
                found += find_items(part.thread)
    summarizer.total_calls = summarizer.calls + combining_calls(len(partials), budget.fanout)
    summary = summarizer.combine(partials) or (
        f"The model wrote no summary of these {count} messages."
    )
    hidden = sum(len(t.cited) for t in threads if t.key in withheld)
    return Digest(
        summary=summary + _withheld_note(hidden, summarizer.blocked) + _skipped_note(messages),
        decisions=[_item(f, channel) for f in found if f.kind == "decision"],
        action_items=[_action(f, channel, messages) for f in found if f.kind == "action"],
        open_questions=[_item(f, channel) for f in found if f.kind == "question"],
        messages=count,
    )


def _window(given: DigestInput, messages: SlackMessages, channel: str, days: int) -> Window:
    """The window asked for: from `since` to now, or the `days` before `until`; with
    neither, the `days` up to the channel's newest message."""
    since = _instant(given.since, end=False) if given.since is not None else None
    if given.until is not None:
        until = _instant(given.until, end=True)
    elif since is not None:
        until = datetime.now(UTC)
    else:
        newest = max((m.at for t in messages.threads(channel) for m in t.messages), default=None)
        until = newest + timedelta(microseconds=1) if newest else datetime.now(UTC)
    since = since or until - timedelta(days=days)
    if since >= until:
        raise BadRequest(f"`since` ({since.isoformat()}) must come before `until`")
    return Window(since, until)


def _instant(value: date | datetime, *, end: bool) -> datetime:
    """A date as the start of its day, or (for an end) the start of the next; a datetime
    without a zone is UTC; an end datetime is inclusive."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment + timedelta(microseconds=1) if end else moment
    start = datetime.combine(value, time(), UTC)
    return start + timedelta(days=1) if end else start


def _day(moment: datetime) -> str:
    return moment.date().isoformat()


def _last_day(window: Window) -> str:
    return (window.until - timedelta(microseconds=1)).date().isoformat()


def _budget(run: AppRun, settings: DigestSettings) -> Budget:
    entry = run.platform.config.app(run.app)
    model = (
        run.model or (entry.model if entry else None) or run.platform.config.resolved_default_model
    )
    context = run.platform.registry.info(model).context_length
    return Budget.for_model(context, settings.batch_tokens, settings.summary_tokens)


def _cited(found: Found, channel: str) -> list[Cited]:
    return [Cited(channel=channel, ts=m.ts) for m in found.messages]


def _item(found: Found, channel: str) -> Item:
    return Item(text=found.text, sources=_cited(found, channel))


def _action(found: Found, channel: str, messages: SlackMessages) -> ActionItem:
    owner = None
    if found.owner is not None:
        contact = messages.contact_id(found.owner.user) if found.owner.user else None
        owner = Owner(name=found.owner.name, contact_id=contact)
    return ActionItem(text=found.text, sources=_cited(found, channel), owner=owner, due=found.due)


def _withheld_note(messages: int, blocked: int) -> str:
    note = ""
    if messages:
        note += (
            f" ({messages} message{'s were' if messages > 1 else ' was'} withheld by the "
            "guards, for example as a prompt injection, and left out of this digest.)"
        )
    if blocked:
        were = "summaries were" if blocked > 1 else "summary was"
        note += f" ({blocked} partial {were} blocked by the guards.)"
    return note


def _skipped_note(messages: SlackMessages) -> str:
    if not messages.skipped:
        return ""
    named = "; ".join(f"{s.where}: {s.reason}" for s in messages.skipped[:MAX_SKIPPED_NAMED])
    more = len(messages.skipped) - MAX_SKIPPED_NAMED
    return f" (Not read: {named}" + (f"; and {more} more" if more > 0 else "") + ".)"


def markdown(output: Digest) -> str:
    """The digest as `bastion app run slack-digest --format markdown` shows it."""

    def bullet(item: Item, extra: str = "") -> str:
        cited = ", ".join(f"#{s.channel} {s.ts}" for s in item.sources)
        return f"- {item.text}{extra} [{cited}]"

    def action(item: ActionItem) -> str:
        who = item.owner.name if item.owner else "unassigned"
        return bullet(item, f" ({who}" + (f", due {item.due.isoformat()})" if item.due else ")"))

    sections = [
        ("Summary", [output.summary, f"_{output.messages} messages._"]),
        ("Decisions", [bullet(i) for i in output.decisions]),
        ("Action items", [action(i) for i in output.action_items]),
        ("Open questions", [bullet(i) for i in output.open_questions]),
    ]
    return "\n\n".join(
        f"## {title}\n\n" + ("\n".join(lines) if lines else "- (none)") for title, lines in sections
    )


@hookimpl
def register_apps(register: Register) -> None:
    register(
        AppSpec(
            name="slack-digest",
            description="a Slack channel's summary, decisions, action items and open "
            "questions over a time window, each item citing its messages",
            settings=DigestSettings,
            input=DigestInput,
            output=Digest,
            run=digest,
            markdown=markdown,
            score=case_scores,
        )
    )


__all__ = ["Digest", "DigestInput", "DigestSettings", "digest", "markdown", "register_apps"]
