"""The PII hashing key: from the environment, or a random owner-only file made once under the home."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from guardflow.errors import ConfigError
from guardflow.io.pii_key import KEY_ENV, KEY_FILE, read_pii_key


def test_key_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "a-secret-of-twenty-chars")
    assert read_pii_key(tmp_path) == b"a-secret-of-twenty-chars", "the environment's key is used as is"
    assert not (tmp_path / KEY_FILE).exists(), "no key file when the environment gives one"
    monkeypatch.setenv(KEY_ENV, "short")
    with pytest.raises(ConfigError, match="too short"):
        read_pii_key(tmp_path)


def test_key_file_is_created_once_owner_only_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    # when the key is read twice with no environment key
    first, second = read_pii_key(tmp_path), read_pii_key(tmp_path)
    # then one random key is created, readable by its owner only, and reused
    path = tmp_path / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"key file must be 0600, got {path.stat().st_mode:o}"
    assert first == second and len(first) == 32, "one 32-byte key, the same on every run"
    assert read_pii_key(tmp_path / "elsewhere") != first, "another home gets another random key"
    # and a key file others can read is refused
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        read_pii_key(tmp_path)
