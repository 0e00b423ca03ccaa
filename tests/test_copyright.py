"""Protected works: the registry on disk, the matcher, the guard in the pipeline, the CLI."""

from __future__ import annotations

import copy
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from typer.testing import CliRunner

from bastion.cli import app
from bastion.copyright import registry as registry_module
from bastion.copyright.matcher import Matcher
from bastion.copyright.normalise import normalise, normalise_with_map
from bastion.copyright.registry import ProtectedRegistry
from bastion.errors import BadRequest, Conflict, NotFound
from bastion.models import ChatMessage, GenerationParams
from bastion.pipeline import ChatRequest
from bastion.platform import Platform
from conftest import ECHO_CONFIG, LiveServer, write_config

# Original prose written for these tests: the "protected work".
POEM = (
    "The lighthouse keeper counted storms the way other men count sheep, one gale for every "
    "winter he had spent on the rock. His daughter, who kept the ledger, wrote each of them "
    "down in violet ink: the night the lantern cracked, the morning the supply boat turned "
    "back twice, the long week in March when the fog sat on the water like a second sea and "
    "no ship passed at all. When the harbour board wrote to say the light would be automated, "
    "he read the letter once, folded it into a paper boat, and set it on the tide. The boat "
    "went out past the reef, and the keeper went back up the spiral stairs to wind the clock "
    "that no longer needed winding, because some habits are a kind of faith."
)
OTHER = (
    "Quarterly revenue rose on the strength of the new support plans, while churn fell in every "
    "region except the northern accounts, where two large customers consolidated their "
    "contracts after a merger and moved to annual billing."
)
CODE = '''import math


def haversine(lat1, lon1, lat2, lon2):
    """Great-circle distance in kilometres."""
    # convert degrees to radians first
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)  # longitude delta
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(a))
'''


@pytest.fixture
def registry(tmp_path: Path) -> ProtectedRegistry:
    r = ProtectedRegistry(tmp_path / "protected" / "index.sqlite")
    r.add_text("keeper", "The Keeper", POEM, owner="Ana Ruiz", license_id="CC-BY-NC-4.0")
    return r


def test_normalising_ignores_case_whitespace_punctuation_and_quote_style() -> None:
    assert normalise("Don’t  STOP—believing!\n") == normalise("don't stop believing")
    text = "Hello,   “World”!  It’s fine."
    normal, source = normalise_with_map(text)
    assert normal == "hello world its fine"
    assert text[source[normal.index("world")]] == "W"


def test_a_verbatim_copy_is_found_with_its_span_despite_reformatting(
    registry: ProtectedRegistry,
) -> None:
    copied = POEM[120:420].upper().replace(",", "").replace(" ", "  ")
    answer = f"{OTHER}\n\n{copied}\n\nThat is the story."
    [match] = Matcher(registry).scan(answer)
    assert match.kind == "exact" and match.similarity == 1.0
    assert match.document.work.key == "keeper" and match.document.work.owner == "Ana Ruiz"
    assert answer[match.start : match.end].strip() in copied
    assert match.chars >= len(copied) - 20


def test_an_edited_copy_is_a_near_match_and_unrelated_text_is_not(
    registry: ProtectedRegistry,
) -> None:
    words = POEM[:500].split(" ")
    for i in range(3, len(words), 10):  # every tenth word replaced
        words[i] = "indeed"
    [match] = Matcher(registry).scan(" ".join(words))
    assert match.kind == "near" and 0.8 <= match.similarity < 1
    assert Matcher(registry).scan(OTHER * 3) == []


def test_short_quotes_are_allowed(registry: ProtectedRegistry) -> None:
    quote = POEM[:100]  # under min_chars and too short for a near match
    assert Matcher(registry).scan(f"As the book says, {quote} and so on.") == []


def test_folders_register_as_one_work_and_code_ignores_comments(tmp_path: Path) -> None:
    repo = tmp_path / "geo"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "distance.py").write_text(CODE)
    (repo / "README.md").write_text(POEM)
    (repo / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0" * 10)
    (repo / ".git").mkdir()
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    r = ProtectedRegistry(tmp_path / "index.sqlite")
    done = r.add_path(repo, owner="Geo Inc.", license_id="GPL-3.0-only")
    [work] = done.works
    assert work.files == 2 and done.skipped == [(str(repo / "logo.png"), "binary file (not text)")]
    # the answer re-indents the code, drops one comment and rewrites another
    answer = (
        "Here you go:\n```python\n"
        + CODE.replace("    ", "  ")
        .replace("# convert degrees to radians first", "# to radians")
        .replace("  # longitude delta", "")
        + "```\n"
    )
    [match] = Matcher(r).scan(answer)
    assert match.document.path == "src/distance.py" and match.document.kind == "code"
    assert match.document.work.license == "GPL-3.0-only"


def test_removing_a_work_removes_its_fingerprints(registry: ProtectedRegistry) -> None:
    registry.add_text("other", "Other", OTHER * 2, owner="X", license_id="MIT")
    removed = registry.remove("keeper")
    assert removed.title == "The Keeper"
    with sqlite3.connect(registry.path) as db:
        assert db.execute("SELECT count(*) FROM txt").fetchone()[0] == 1
        left = db.execute("SELECT DISTINCT doc FROM fp").fetchall()
    assert len(left) == 1  # only the other work's
    assert Matcher(registry).scan(POEM) == []
    assert [w.key for w in registry.works()] == ["other"]
    with pytest.raises(NotFound):
        registry.remove("keeper")


def test_large_files_are_read_in_blocks_with_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_module, "READ_BLOCK", 97)
    monkeypatch.setattr(registry_module, "TEXT_CHUNK", 64)
    path = tmp_path / "keeper.txt"
    path.write_text(POEM)
    r = ProtectedRegistry(tmp_path / "index.sqlite")
    [work] = r.add_path(path, owner="Ana", license_id="MIT").works
    assert work.chars == len(normalise(POEM))
    [match] = Matcher(r).scan(POEM[200:600])
    assert match.kind == "exact" and match.chars >= 390
    r.remove(work.key)
    with sqlite3.connect(r.path) as db:
        assert db.execute("SELECT count(*) FROM fp").fetchone()[0] == 0


def test_bad_input_is_refused_clearly_and_nothing_is_half_registered(tmp_path: Path) -> None:
    r = ProtectedRegistry(tmp_path / "index.sqlite")
    latin = tmp_path / "latin.txt"
    latin.write_bytes(("Café " + POEM).encode("latin-1"))
    with pytest.raises(BadRequest, match="--encoding"):
        r.add_path(latin, owner="A", license_id="MIT")
    assert r.add_path(latin, owner="A", license_id="MIT", encoding="latin-1").works
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"\0\1\2" * 100)
    with pytest.raises(BadRequest, match="binary"):
        r.add_path(binary, owner="A", license_id="MIT")
    with pytest.raises(BadRequest, match="SPDX"):
        r.add_path(latin, owner="A", license_id="all rights reserved", key="x")
    with pytest.raises(Conflict, match="already registered"):
        r.add_path(latin, owner="A", license_id="MIT", encoding="latin-1")
    with pytest.raises(Conflict, match="same text"):
        r.add_path(latin, owner="A", license_id="MIT", encoding="latin-1", key="copy")
    big = tmp_path / "big.txt"
    big.write_text(POEM * 10)
    with pytest.raises(BadRequest, match="--max-file-mb"):
        r.add_path(big, owner="A", license_id="MIT", max_file_mb=0.001)
    works = tmp_path / "works.jsonl"
    works.write_text(
        json.dumps({"id": "a", "title": "A", "text": POEM}) + "\n" + '{"id": "b", "text": 3}\n'
    )
    with pytest.raises(BadRequest, match="line 2"):
        r.add_path(works, owner="A", license_id="MIT", strict=True)
    assert [w.key for w in r.works()] == ["latin.txt"]  # strict: the JSONL file added nothing


def test_a_jsonl_file_registers_many_works(tmp_path: Path) -> None:
    works = tmp_path / "works.jsonl"
    rows = [
        {"id": "keeper", "title": "The Keeper", "text": POEM},
        {"id": "report", "title": "Report", "text": OTHER, "owner": "Acme", "license": "MIT"},
    ]
    works.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = ProtectedRegistry(tmp_path / "index.sqlite")
    done = r.add_path(works, owner="Default", license_id="LicenseRef-Proprietary")
    assert [(w.key, w.owner, w.license) for w in done.works] == [
        ("keeper", "Default", "LicenseRef-Proprietary"),
        ("report", "Acme", "MIT"),
    ]


def test_a_jsonl_file_skips_and_reports_the_rows_it_cannot_register(tmp_path: Path) -> None:
    """A bad row, a repeated id and a text registered already are reported and left out;
    the other works are registered, and are found afterwards."""
    works = tmp_path / "works.jsonl"
    rows = [
        json.dumps({"id": "keeper", "title": "The Keeper", "text": POEM}),
        "{not json",
        json.dumps({"id": "keeper", "text": OTHER}),  # the id again
        json.dumps({"id": "keeper-again", "text": POEM.upper()}),  # the same text normalised
        json.dumps({"id": "report", "text": OTHER}),
    ]
    works.write_text("\n".join(rows) + "\n")
    r = ProtectedRegistry(tmp_path / "index.sqlite")
    done = r.add_path(works, owner="A", license_id="MIT")
    assert [w.key for w in done.works] == ["keeper", "report"]
    assert [(where, why.split(" ")[0]) for where, why in done.skipped] == [
        ("works.jsonl line 2", str(works)),
        ("works.jsonl line 3", "a"),
        ("works.jsonl line 4", "the"),
    ]
    assert "already registered as work 'keeper'" in done.skipped[2][1]
    assert [w.key for w in r.works()] == ["keeper", "report"]
    assert Matcher(r).scan(OTHER)  # the work after the skipped rows is indexed
    with pytest.raises(BadRequest, match=r"no works to register .* 5 rows were skipped"):
        r.add_path(works, owner="A", license_id="MIT")  # everything is there already


# -- the guard in the pipeline ---------------------------------------------------------------


@pytest.fixture
def protected(home: Path) -> Iterator[Platform]:
    config = copy.deepcopy(ECHO_CONFIG)
    config["guards"]["max_input_chars"] = 4000
    config["guards"]["injection"] = {"action": "flag"}  # the prompts here are the story itself
    config["apps"] += [
        {"name": "quotes", "copyright_action": "attribute"},
        {"name": "notes", "copyright_action": "flag"},
    ]
    write_config(home, config)
    ProtectedRegistry(home / "protected" / "index.sqlite").add_text(
        "keeper", "The Keeper", POEM, owner="Ana Ruiz", license_id="CC-BY-NC-4.0"
    )
    platform = Platform.open(home)
    yield platform
    platform.close()


def ask(platform: Platform, text: str, app: str) -> tuple[str, dict[str, object], str]:
    key = platform.access.create_key(tenant="acme", user="a", role="admin").secret
    request = ChatRequest(
        [ChatMessage("user", text)], GenerationParams(max_tokens=400), "echo", app, False
    )
    done = platform.pipeline.complete(platform.pipeline.prepare(request, key))
    return done.text, done.bastion, done.finish_reason


def test_policies_block_attribute_or_flag_a_copy(protected: Platform) -> None:
    text, field, finish = ask(protected, POEM[:400], "chat")
    assert finish == "content_filter" and POEM[:50] not in text
    [verdict] = [v for v in field["trust"]["verdicts"] if v["guard"] == "copyright"]  # type: ignore[index]
    finding = verdict["findings"][0]
    assert verdict["action"] == "block" and finding["source"]["owner"] == "Ana Ruiz"
    assert finding["source"]["license"] == "CC-BY-NC-4.0" and "The Keeper" in finding["detail"]

    text, field, finish = ask(protected, POEM[:400], "quotes")
    assert finish != "content_filter" and text.endswith(
        "Source: “The Keeper”, © Ana Ruiz (CC-BY-NC-4.0)."
    )
    text, field, _ = ask(protected, POEM[:400], "notes")
    assert "Source:" not in text and field["trust"]["action"] == "flag"  # type: ignore[index]
    text, field, _ = ask(protected, OTHER, "chat")
    verdicts = field["trust"]["verdicts"]  # type: ignore[index]
    [verdict] = [v for v in verdicts if v["guard"] == "copyright"]
    assert text == OTHER and verdict["action"] == "allow" and not verdict["findings"]


def test_a_stream_that_starts_copying_is_stopped_mid_way(protected: Platform) -> None:
    intro = "The newsletter this month opens with a short piece of fiction. " * 3
    with LiveServer(protected) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=server.key())
        chunks = list(
            client.chat.completions.create(
                model="echo",
                messages=[{"role": "user", "content": intro + POEM}],
                stream=True,
                max_tokens=400,
            )
        )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
    assert finish == "content_filter"
    assert text.startswith("The newsletter this month")
    copied = len(text) - len(" ".join(intro.split()))
    assert copied < 160 + 64  # at most the threshold and one check's worth got out


def test_a_flagged_stream_reports_one_finding_for_the_whole_passage(protected: Platform) -> None:
    key = protected.access.create_key(tenant="acme", user="a", role="admin").secret
    request = ChatRequest(
        [ChatMessage("user", "Intro words here. " + POEM)],
        GenerationParams(max_tokens=400),
        "echo",
        "notes",
        True,
    )
    events = list(protected.pipeline.open_stream(protected.pipeline.prepare(request, key)))
    text = "".join(e.text for e in events)
    field = events[-1].bastion
    assert field is not None
    [verdict] = [v for v in field["trust"]["verdicts"] if v["guard"] == "copyright"]
    [finding] = verdict["findings"]
    assert verdict["action"] == "flag" and text.startswith("Intro words here.")
    assert finding["end"] - finding["start"] > len(POEM) - 40


def test_the_cli_adds_lists_evaluates_and_removes(home: Path, tmp_path: Path) -> None:
    write_config(home, ECHO_CONFIG)
    runner = CliRunner()
    book = tmp_path / "keeper.txt"
    book.write_text(POEM)
    added = runner.invoke(
        app, ["protect", "add", str(book), "--owner", "Ana Ruiz", "--license", "CC-BY-4.0"]
    )
    assert added.exit_code == 0 and "registered keeper.txt" in added.stdout
    listed = runner.invoke(app, ["protect", "list", "--json"])
    assert json.loads(listed.stdout)[0]["owner"] == "Ana Ruiz"
    data = tmp_path / "rows.jsonl"
    data.write_text(
        json.dumps({"text": "Look: " + POEM[50:400], "label": 1})
        + "\n"
        + json.dumps({"text": OTHER, "label": 0})
        + "\n"
    )
    preds = tmp_path / "preds.jsonl"
    evaluated = runner.invoke(
        app, ["eval", "guard", "copyright", "--data", str(data), "--predictions", str(preds)]
    )
    assert evaluated.exit_code == 0, evaluated.stderr
    scores = json.loads(evaluated.stdout)
    assert scores["precision"] == 1.0 and scores["recall"] == 1.0
    lines = [json.loads(line) for line in preds.read_text().splitlines()]
    assert lines[0]["work_id"] == "keeper.txt" and lines[1] == {
        "score": 0.0,
        "flagged": False,
        "work_id": None,
    }
    bad = runner.invoke(app, ["protect", "add", str(book), "--owner", "A", "--license", "nope"])
    assert bad.exit_code == 1 and "SPDX" in bad.stderr and "Traceback" not in bad.stderr
    assert runner.invoke(app, ["protect", "remove", "keeper.txt"]).exit_code == 0
    assert json.loads(runner.invoke(app, ["protect", "list", "--json"]).stdout) == []


# A longer protected story for the edited-copy tests: short sentences, recurring names.
FERRY = (
    "Marta ran the night ferry between the two halves of the town. The river was narrow there "
    "but fast, and the cable groaned whenever the current leaned on it. She knew every regular "
    "by the sound of their boots on the ramp. The baker came at four with flour on his sleeves. "
    "Two nurses from the hospital shared a thermos and never spoke about their shift. A boy "
    "with a cello case rode across and back again without getting off, just to practise in "
    "the cabin where nobody minded. In winter the windows fogged and Marta drew maps on them "
    "with one finger, small islands that did not exist and harbours with impossible names. "
    "The owner of the line wanted a bridge, and the council wanted the owner to pay for it. "
    "Meanwhile the ferry kept its hours, and Marta kept a lamp lit in the wheelhouse long "
    "after the last crossing, in case somebody on the far bank had missed the time."
)
# The story's later chapter, never registered: the same people, places and turns of phrase.
FERRY_LATER = (
    "By spring the council had found the money, and surveyors walked the far bank with "
    "striped poles. Marta ran the night ferry as before, though fewer regulars came. The baker "
    "came at four with flour on his sleeves, then at five, then not at all once the new oven "
    "opened on his own side. The boy with the cello case had grown, and played in the "
    "cabin where nobody minded for an audience of two sleepy nurses. When the first span of "
    "the bridge was lowered into place, Marta drew one last map on the fogged window: a town "
    "with no river in it, and a small boat drawn up on dry land."
)


def _sentences(text: str) -> list[str]:
    return [s if s.endswith(".") else s + "." for s in text.split(". ")]


@pytest.fixture
def ferry(tmp_path: Path) -> ProtectedRegistry:
    r = ProtectedRegistry(tmp_path / "index.sqlite")
    r.add_text("ferry", "The Night Ferry", FERRY, owner="Ana Ruiz", license_id="CC-BY-NC-4.0")
    return r


def _one_word_in_ten_edited(text: str) -> str:
    """Every tenth word replaced, followed by a word inserted or dropped, in turn."""
    edited: list[str] = []
    for i, word in enumerate(text.split(" ")):
        op = (i // 10) % 3 if i % 10 == 4 else -1
        if op == 0:
            edited.append("really")
        elif op == 1:
            edited += [word, "then"]
        elif op == -1:
            edited.append(word)
    return " ".join(edited)


def test_a_short_copy_with_one_word_in_ten_edited_is_a_near_match(
    ferry: ProtectedRegistry,
) -> None:
    """Every excerpt of 30 words (about 170 characters) with one word in ten replaced,
    inserted or dropped: no verbatim run is long enough to be exact, and few fingerprints
    are shared."""
    words = FERRY.split(" ")
    for first in range(0, len(words) - 30, 3):
        copied = _one_word_in_ten_edited(" ".join(words[first : first + 30]))
        answer = f"{OTHER}\n\n{copied}\n\nThat is all I remember of it."
        [match] = Matcher(ferry).scan(answer)
        assert match.kind == "near" and match.document.work.key == "ferry"
        assert 0.8 <= match.similarity < 1
        at = answer.index(copied)
        assert at - 20 <= match.start and match.end <= at + len(copied) + 20


def test_a_copy_with_its_sentences_reordered_is_a_near_match(ferry: ProtectedRegistry) -> None:
    """No sentence is long enough to be an exact copy on its own, and the swapped order
    breaks the diagonal the words lie on."""
    one, two, three, four = _sentences(FERRY)[3:7]
    for copied in (f"{two} {one} {four} {three}", f"{three} {one} {two}"):
        answer = f"Here is the scene again. {copied} {OTHER}"
        [match] = Matcher(ferry).scan(answer)
        assert match.kind == "near" and match.document.work.key == "ferry"
        assert match.similarity >= 0.9
        assert match.start <= answer.index(copied) + 10
        assert match.end >= answer.index(copied) + len(copied) - 10


def test_an_unregistered_passage_of_the_same_work_is_not_a_copy(
    ferry: ProtectedRegistry,
) -> None:
    """The later chapter repeats names and several phrases of the registered one (some of
    them six or seven words long), in order and shuffled, and is still not a copy."""
    matcher = Matcher(ferry)
    shuffled = " ".join(reversed(_sentences(FERRY_LATER)))
    for text in (FERRY_LATER, shuffled, f"{OTHER} {FERRY_LATER}"):
        assert matcher.scan(text) == []
