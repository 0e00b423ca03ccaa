"""The per-request PII vault: typed placeholders in, originals out.

The same value gets the same placeholder throughout a request (and so throughout the
conversation it carries). Originals are held only as Fernet ciphertexts, so a dump of the
vault, a log line or an audit record never holds them in clear; `unmask` decrypts them for
the caller's answer alone.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import stat
from collections import Counter
from pathlib import Path

from cryptography.fernet import Fernet

from bastion.errors import ConfigError

PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*?)_(\d+)>")
_LONGEST_PLACEHOLDER = 40


def vault_key(home: Path, env_var: str = "BASTION_VAULT_KEY") -> bytes:
    """The vault key: from `env_var`, else `home/vault.key` (created 0600 on first use).
    A key file other users may read or write is refused: whoever reads it can decrypt
    what the vault sealed."""
    if os.environ.get(env_var):
        return os.environ[env_var].encode()
    path = home / "vault.key"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key())
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"{path} is open to other users (mode {mode:04o}); restrict it with "
            f"`chmod 600 {path}` or give the key in {env_var}"
        )
    return path.read_bytes().strip()


class PiiVault:
    def __init__(self, fernet: Fernet | None = None) -> None:
        # Without a key of its own, the vault's ciphertexts die with it (tests, tools).
        self._fernet = fernet or Fernet(Fernet.generate_key())
        self._salt = secrets.token_bytes(16)
        self._by_value: dict[bytes, str] = {}
        self._sealed: dict[str, bytes] = {}
        self._counts: Counter[str] = Counter()
        self._allowed: set[bytes] = set()

    def _key(self, entity_type: str, value: str) -> bytes:
        """A keyed hash of the value: lookups work, yet the table holds no PII."""
        canonical = f"{entity_type}|{' '.join(value.split()).casefold()}".encode()
        return hmac.new(self._salt, canonical, hashlib.sha256).digest()

    def placeholder(self, entity_type: str, value: str, *, restorable: bool = True) -> str:
        """The placeholder for `value`; only restorable values come back in `unmask`."""
        key = self._key(entity_type, value)
        if key not in self._by_value:
            self._counts[entity_type] += 1
            token = f"<{entity_type}_{self._counts[entity_type]}>"
            self._by_value[key] = token
            if restorable:
                self._sealed[token] = self._fernet.encrypt(value.encode("utf-8"))
        return self._by_value[key]

    def allow(self, entity_type: str, value: str) -> None:
        """Remember a value the caller sent and policy let through unmasked."""
        self._allowed.add(self._key(entity_type, value))

    def knows(self, entity_type: str, value: str) -> bool:
        """Whether the caller sent this value (masked or allowed)."""
        key = self._key(entity_type, value)
        return key in self._allowed or self._by_value.get(key, "") in self._sealed

    def unmask(self, text: str) -> str:
        """Put the caller's own values back in place of their placeholders."""

        def restore(match: re.Match[str]) -> str:
            sealed = self._sealed.get(match.group(0))
            return self._fernet.decrypt(sealed).decode("utf-8") if sealed else match.group(0)

        return PLACEHOLDER.sub(restore, text) if self._sealed else text


class StreamUnmasker:
    """Unmasks a stream, holding back only what could be the start of a placeholder."""

    def __init__(self, vault: PiiVault) -> None:
        self._vault = vault
        self._buffer = ""

    def feed(self, text: str) -> str:
        self._buffer += text
        cut = self._buffer.rfind("<")
        if cut == -1 or ">" in self._buffer[cut:] or len(self._buffer) - cut > _LONGEST_PLACEHOLDER:
            cut = len(self._buffer)
        out, self._buffer = self._buffer[:cut], self._buffer[cut:]
        return self._vault.unmask(out)

    def flush(self) -> str:
        out, self._buffer = self._buffer, ""
        return self._vault.unmask(out)
