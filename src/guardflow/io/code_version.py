"""Which code trained a model: the package version, plus the git commit (and uncommitted changes) when the
package runs from a git checkout."""

from __future__ import annotations

import hashlib
import subprocess
from functools import cache
from pathlib import Path

from guardflow import __version__

_CODE_FOLDERS = ("src", "flows", "tasks")


def _git(checkout: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(checkout), *args], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.decode("utf-8", errors="replace") if done.returncode == 0 else None


@cache
def code_version() -> str:
    """`<version>`, or `<version>+g<commit>` from a git checkout, with `.dirty<hash of the diff>` when the
    pipeline's code differs from the commit (two different uncommitted edits never look the same)."""
    checkout = Path(__file__).resolve().parents[3]
    commit = _git(checkout, "rev-parse", "HEAD")
    if not commit or not (checkout / "src" / "guardflow").is_dir():
        return __version__
    version = f"{__version__}+g{commit.strip()[:12]}"
    diff = _git(checkout, "diff", "HEAD", "--", *_CODE_FOLDERS)
    if diff:
        version += f".dirty{hashlib.sha256(diff.encode()).hexdigest()[:12]}"
    return version
