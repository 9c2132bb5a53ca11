"""The noise multiplier that spends a target epsilon, found once per set of public parameters and remembered.

Opacus' search (`get_noise_multiplier`) doubles from sigma 20 and bisects: about ten evaluations of the accountant.
PRV's evaluation is cheap at a small sample rate (0.1 s for the MLP's 512 of ~5,000 rows) and slow at a large one
(1.1-1.5 s for the Platt calibration's 256 of ~500 rows over 20 epochs): on a 6,000-row training the search took
~12 s of the 15 s the stage took. The sigma depends only on public parameters (accountant, target epsilon and delta,
sample rate, steps), so each one found is kept in the user's cache folder (`$XDG_CACHE_HOME/guardflow`, else
`~/.cache/guardflow`) and reused when the same parameters come back: a rerun, a retrain on a batch of the same
size, a test suite. A cached sigma is used only after one accountant evaluation confirms that it spends between the
target minus Opacus' tolerance and the target: the cache saves time, it never decides a guarantee. On a miss the
search is Opacus' own, so a cached and an uncached run train with the same noise.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile

from opacus.accountants import create_accountant
from opacus.accountants.utils import get_noise_multiplier

from guardflow.settings import cache_folder

# Opacus' default precision for its search: the sigma found spends between target - tolerance and target.
EPSILON_TOLERANCE = 0.01
# Accountants cheap enough that Opacus' own search costs nothing (and is what a reader expects).
_CHEAP = frozenset({"rdp"})
_CACHE_FILE = "noise-multipliers.json"


@functools.lru_cache(maxsize=256)
def epsilon_spent(
    accountant: str, noise_multiplier: float, sample_rate: float, steps: int, delta: float
) -> float:
    """The epsilon the accountant reports for `steps` DP-SGD steps at this noise and sample rate (memoised: the check
    of a remembered sigma is also what the finished run reports it spent)."""
    evaluator = create_accountant(mechanism=accountant)
    evaluator.history = [(noise_multiplier, sample_rate, steps)]
    return float(evaluator.get_epsilon(delta=delta))


def noise_multiplier(
    *, target_epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str
) -> float:
    """The sigma Opacus' search finds: over `steps` steps at `sample_rate` it spends at most `target_epsilon` and at
    least `target_epsilon - EPSILON_TOLERANCE`."""

    def search() -> float:
        return float(
            get_noise_multiplier(
                target_epsilon=target_epsilon, target_delta=delta, sample_rate=sample_rate, steps=steps,
                accountant=accountant, epsilon_tolerance=EPSILON_TOLERANCE,
            )
        )  # fmt: skip

    if accountant in _CHEAP:
        return search()
    key = json.dumps([accountant, target_epsilon, delta, sample_rate, steps, EPSILON_TOLERANCE])
    cached = _read_cache().get(key)
    if isinstance(cached, float):
        spent = epsilon_spent(accountant, cached, sample_rate, steps, delta)
        if target_epsilon - EPSILON_TOLERANCE <= spent <= target_epsilon:
            return cached
    sigma = search()
    _write_cache(key, sigma)
    return sigma


def _read_cache() -> dict[str, object]:
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads((cache_folder() / _CACHE_FILE).read_text())
        if isinstance(loaded, dict):
            return loaded
    return {}


def _write_cache(key: str, sigma: float) -> None:
    """Add one entry (atomic replace: concurrent writers may lose an entry, never corrupt the file)."""
    with contextlib.suppress(OSError):
        folder = cache_folder()
        folder.mkdir(parents=True, exist_ok=True)
        entries = _read_cache()
        entries[key] = sigma
        descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".noise-", suffix=".json")
        with os.fdopen(descriptor, "w") as handle:
            json.dump(entries, handle)
        os.replace(temporary, folder / _CACHE_FILE)
