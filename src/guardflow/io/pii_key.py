"""The secret key of the PII guard's keyed hash: never in the repository or the config.

`GUARDFLOW_PII_KEY` when set (at least 16 characters); otherwise a random 32-byte key created once under
`$GUARDFLOW_HOME` with owner-only permissions (0600) and reused by every later run, so hashed ids stay joinable.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from guardflow.errors import ConfigError

KEY_ENV = "GUARDFLOW_PII_KEY"
KEY_FILE = "pii.key"
MIN_KEY_CHARS = 16


def read_pii_key(home: Path) -> bytes:
    """The key from `GUARDFLOW_PII_KEY`, else from `<home>/pii.key`, which is created (0600) when missing."""
    from_env = os.environ.get(KEY_ENV)
    if from_env is not None:
        if len(from_env) < MIN_KEY_CHARS:
            raise ConfigError(f"{KEY_ENV} is too short: use at least {MIN_KEY_CHARS} random characters")
        return from_env.encode("utf-8")
    path = home / KEY_FILE
    if not path.exists():
        _create_key_file(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(f"PII key file {path} is readable by others (mode {mode:o}); run chmod 600 on it")
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except ValueError:
        raise ConfigError(f"PII key file {path} does not hold a hex key") from None
    if len(key) < MIN_KEY_CHARS:
        raise ConfigError(f"PII key file {path} holds a key shorter than {MIN_KEY_CHARS} bytes")
    return key


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two runs starting at once cannot both write a key; the loser reads the winner's.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(secrets.token_hex(32) + "\n")
