from __future__ import annotations

from pathlib import Path

import pytest

from bastion.config import EMBEDDED_MODEL_NAME, bastion_home, load_config
from bastion.errors import ConfigError


def test_defaults_without_a_file(tmp_path: Path) -> None:
    cfg = load_config(tmp_path / "missing.yaml", environ={})
    assert cfg.resolved_default_model == EMBEDDED_MODEL_NAME
    assert cfg.server.port == 8080 and cfg.audit.retain_text


def test_environment_overrides_nested_keys(tmp_path: Path) -> None:
    env = {
        "BASTION_SERVER__PORT": "9001",
        "BASTION_GUARDS__DENY_LIST__TERMS": "[alpha, beta gamma]",
        "BASTION_AUDIT__RETAIN_TEXT": "false",
        "BASTION_HOME": "/ignored/not/a/key",
    }
    cfg = load_config(tmp_path / "missing.yaml", environ=env)
    assert cfg.server.port == 9001
    assert cfg.guards.deny_list.terms == ["alpha", "beta gamma"]
    assert cfg.audit.retain_text is False


@pytest.mark.parametrize(
    ("yaml_text", "env", "needle"),
    [
        ("server:\n  prot: 1\n", {}, "server.prot: unknown key"),
        ("server:\n  port: high\n", {}, "server.port"),
        ("", {"BASTION_SERVER__PORT": "70000"}, "server.port"),
        ("models:\n  - name: m\n    backend: openai\n", {}, "needs 'base_url'"),
        ("models:\n  - name: m\n    backend: magic\n", {}, "models.0.backend"),
        ("default_model: ghost\n", {}, "unknown model 'ghost'"),
        ("models: []\n", {}, "models"),
        ("- just\n- a list\n", {}, "mapping"),
        ("server: [\n", {}, "not valid YAML"),
    ],
)
def test_bad_config_names_the_key(
    tmp_path: Path, yaml_text: str, env: dict[str, str], needle: str
) -> None:
    path = tmp_path / "bastion.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        load_config(path, environ=env)
    assert needle in err.value.message


def test_home_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BASTION_HOME", str(tmp_path))
    assert bastion_home() == tmp_path


def test_the_shipped_demo_config_is_valid() -> None:
    from bastion.demo import TEMPLATE

    cfg = load_config(TEMPLATE, environ={})
    assert cfg.resolved_default_model == EMBEDDED_MODEL_NAME
    assert {a.name for a in cfg.apps} >= {"chat"}
