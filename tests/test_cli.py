"""The CLI through its real entry point, against an isolated BASTION_HOME."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bastion.cli import app
from bastion.platform import Platform
from conftest import ECHO_CONFIG, LiveServer, write_config

runner = CliRunner()


def bastion(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def echo_home(home: Path) -> Path:
    write_config(home, ECHO_CONFIG)
    return home


def test_keys_create_quiet_prints_the_key_alone(echo_home: Path) -> None:
    code, out, _ = bastion(
        "keys", "create", "--tenant", "acme", "--user", "u1", "--role", "developer", "--quiet"
    )
    key = out.strip()
    assert code == 0 and key.startswith("bst_") and "\n" not in key
    principal = Platform.open(echo_home).access.resolve(key)
    assert (principal.tenant, principal.user, principal.role) == ("acme", "u1", "developer")


def test_keys_list_and_revoke(echo_home: Path) -> None:
    _, out, _ = bastion("keys", "create", "--tenant", "acme", "--user", "u1", "-q")
    key_id = out.strip().split("_")[1]
    code, out, _ = bastion("keys", "list")
    assert code == 0 and key_id in out and out.count(key_id[:8]) == 1
    assert bastion("keys", "revoke", key_id)[0] == 0
    code, _, err = bastion("keys", "revoke", "0000000000000000")
    assert code == 1 and "no API key" in err


def test_keys_expire_and_rotate(echo_home: Path) -> None:
    code, out, _ = bastion(
        "keys", "create", "--tenant", "acme", "--user", "u1", "--expires-in", "90d", "-q"
    )
    assert code == 0
    key_id = out.strip().split("_")[1]
    code, out, _ = bastion("keys", "rotate", key_id, "--overlap", "2h", "-q")
    new = out.strip()
    assert code == 0 and new.startswith("bst_") and key_id not in new
    keys = {k.key_id: k for k in Platform.open(echo_home).access.list_keys("acme")}
    assert keys[new.split("_")[1]].expires_at is not None  # the successor keeps the lifetime
    assert keys[key_id].expires_at < keys[new.split("_")[1]].expires_at  # type: ignore[operator]
    for bad in ("0d", "3 weeks", "-1h"):
        code, _, err = bastion(
            "keys", "create", "--tenant", "acme", "--user", "u1", "--expires-in", bad
        )
        assert code == 1 and "not a duration" in err


def test_keys_create_refuses_an_unknown_role(echo_home: Path) -> None:
    code, _, err = bastion("keys", "create", "--tenant", "acme", "--user", "u1", "--role", "root")
    assert code == 1 and "unknown" in err and "Traceback" not in err


def test_bad_config_is_reported_without_a_traceback(home: Path) -> None:
    (home / "bastion.yaml").write_text("server:\n  prot: 1\n")
    code, _, err = bastion("models", "list")
    assert code == 1 and "server.prot" in err


def test_models_list_shows_prices(echo_home: Path) -> None:
    code, out, _ = bastion("models", "list", "--json")
    rows = json.loads(out)
    assert code == 0 and [r["name"] for r in rows] == ["echo", "echo-premium"]
    assert rows[1]["price"]["output_per_1m"] == 30.0


def test_audit_commands(echo_home: Path) -> None:
    platform = Platform.open(echo_home)
    with LiveServer(platform) as server:
        key = server.key()
        code, out, _ = bastion(
            "chat", "hello cli world", "--model", "echo", "--url", server.url, "--key", key
        )
        assert code == 0 and "hello cli world" in out
        code, out, _ = bastion(
            "chat", "again", "--model", "echo", "--url", server.url, "--key", key, "--no-stream"
        )
        assert code == 0 and "again" in out
    code, out, _ = bastion("audit", "verify")
    assert code == 0 and "OK" in out and "2 records" in out
    code, out, _ = bastion("audit", "show")
    assert code == 0 and "alice" in out
    export = echo_home / "audit.jsonl"
    assert bastion("audit", "export", "--out", str(export))[0] == 0
    rows = [json.loads(line) for line in export.read_text().splitlines()]
    assert [r["response"] for r in rows] == ["hello cli world", "again"]
    with platform.db.session() as s:
        from bastion.storage.tables import AuditRecord

        record = s.get(AuditRecord, 1)
        assert record is not None
        record.body = record.body.replace("hello cli world", "goodbye")
    code, out, _ = bastion("audit", "verify")
    assert code == 1 and "TAMPERED" in out and "record 1" in out


def test_chat_without_a_server_says_so(echo_home: Path) -> None:
    code, _, err = bastion("chat", "hi", "--url", "http://127.0.0.1:9", "--key", "bst_x")
    assert code == 1 and "cannot reach the server" in err


def test_demo_init_is_repeatable(home: Path) -> None:
    assert bastion("demo", "init", "--no-data")[0] == 0
    keys = json.loads((home / "demo-keys.json").read_text())
    assert bastion("demo", "init", "--no-data")[0] == 0
    assert json.loads((home / "demo-keys.json").read_text()) == keys
    assert (home / "demo-keys.json").stat().st_mode & 0o077 == 0
    principal = Platform.open(home).access.resolve(keys["acme/alice"])
    assert principal.role == "admin" and principal.groups == ("exec",)


def test_cli_commands_without_models_do_not_import_torch(echo_home: Path) -> None:
    code = (
        "import sys; from bastion.cli import app; "
        "sys.argv=['bastion','keys','list'];\n"
        "try: app()\nexcept SystemExit: pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
