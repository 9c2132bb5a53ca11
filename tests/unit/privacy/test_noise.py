"""The remembered noise search: the same sigma as Opacus' own search, reused only when the accountant confirms it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from opacus.accountants.utils import get_noise_multiplier

from guardflow.privacy import noise

PARAMETERS = {"target_epsilon": 1.0, "delta": 1e-5, "sample_rate": 0.02, "steps": 250, "accountant": "prv"}


@pytest.fixture(autouse=True)
def cache_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    noise.epsilon_spent.cache_clear()
    return tmp_path / "guardflow" / "noise-multipliers.json"


def test_a_miss_gives_opacus_sigma_and_remembers_it(cache_in: Path) -> None:
    sigma = noise.noise_multiplier(**PARAMETERS)
    expected = get_noise_multiplier(
        target_epsilon=1.0, target_delta=1e-5, sample_rate=0.02, steps=250, accountant="prv"
    )
    assert sigma == expected, "on a miss the search is Opacus' own"
    assert list(json.loads(cache_in.read_text()).values()) == [sigma], "the sigma found is remembered"


def test_a_hit_is_used_only_when_it_spends_within_the_target(cache_in: Path) -> None:
    sigma = noise.noise_multiplier(**PARAMETERS)
    (key,) = json.loads(cache_in.read_text())
    # a tampered entry (too little noise: overspends) is searched again, never trusted
    cache_in.write_text(json.dumps({key: sigma / 2}))
    assert noise.noise_multiplier(**PARAMETERS) == sigma, "an entry that overspends is replaced"
    assert json.loads(cache_in.read_text())[key] == sigma
    # a sound entry is returned as it is
    spent = noise.epsilon_spent("prv", sigma, 0.02, 250, 1e-5)
    assert 1.0 - noise.EPSILON_TOLERANCE <= spent <= 1.0, f"the remembered sigma spends {spent}"


def test_an_unreadable_cache_is_a_miss(cache_in: Path) -> None:
    cache_in.parent.mkdir(parents=True)
    cache_in.write_text("not json")
    assert noise.noise_multiplier(**PARAMETERS) > 0, "a broken cache file costs a search, not a run"
