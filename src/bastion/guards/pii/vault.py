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
import tempfile
from collections import Counter
from pathlib import Path

from cryptography.fernet import Fernet, MultiFernet

from bastion.errors import ConfigError

PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*?)_(\d+)>")
_LONGEST_PLACEHOLDER = 40


def vault_keys(home: Path, env_var: str = "BASTION_VAULT_KEY") -> MultiFernet:
    """The vault's keys: from `env_var` (comma-separated), else `home/vault.key` (one a line,
    created 0600 on first use). The first key seals; every key listed opens, so a rotation
    (`bastion guards rotate-vault-key`) never breaks a request in flight or a replica not
    yet restarted. A key file other users may read or write is refused: whoever reads it
    can decrypt what the vault sealed."""
    if os.environ.get(env_var):
        return _keys(os.environ[env_var].replace(",", "\n"), env_var)
    path = home / "vault.key"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key())
    _check_private(path, env_var)
    return _keys(path.read_text("ascii"), str(path))


def rotate_vault_key(home: Path, keep_previous: bool = True) -> int:
    """Put a new key first in `home/vault.key` (written beside it 0600, then renamed over
    it); the previous first key is kept to open what it sealed unless `keep_previous` is
    off. Returns how many keys the file now holds."""
    path = home / "vault.key"
    vault_keys(home, env_var="")  # creates the file, refuses a key file others may read
    old = [k for k in path.read_text("ascii").split() if k]
    keys = [Fernet.generate_key().decode(), *(old[:1] if keep_previous else [])]
    fd, staged = tempfile.mkstemp(prefix=".vault.key.", dir=home)  # created 0600
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write("\n".join(keys) + "\n")
    os.replace(staged, path)
    return len(keys)


def _check_private(path: Path, env_var: str) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"{path} is open to other users (mode {mode:04o}); restrict it with "
            f"`chmod 600 {path}` or give the key in {env_var}"
        )


def _keys(text: str, where: str) -> MultiFernet:
    try:
        return MultiFernet([Fernet(k.encode()) for k in text.split()])
    except ValueError as exc:  # an empty list, or a key that is not 32 url-safe base64 bytes
        raise ConfigError(
            f"the vault key in {where} is not valid ({exc}); a key is what "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key())'` "
            "prints, one a line"
        ) from None


class PiiVault:
    def __init__(self, fernet: Fernet | MultiFernet | None = None) -> None:
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
