"""Champion and challenger in a real MLflow store: exactly one champion, every move recorded, rollback works."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from guardflow.errors import RegistryError
from guardflow.io import promotion, registry


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("promotion-home")
    registry.configure_tracking(home, experiment="promotion-test")
    return home


def _versions(store: Path, name: str, gates: list[str]) -> list[str]:
    """A registered model with one version per gate verdict (no artifacts: aliases do not need them)."""
    client = MlflowClient()
    client.create_registered_model(name)
    return [
        str(client.create_model_version(name, source=str(store), tags={"guardflow.gate": gate}).version)
        for gate in gates
    ]


def _champions(name: str) -> list[str]:
    """Every version that carries the champion alias, read version by version."""
    client = MlflowClient()
    versions = [str(version.version) for version in client.search_model_versions(f"name='{name}'")]
    return [version for version in versions if "champion" in client.get_model_version(name, version).aliases]


def test_passing_candidates_become_champion_and_the_history_says_so(store: Path) -> None:
    # given two versions that passed the gate, accepted one after the other
    first, second = _versions(store, "m-accept", ["passed", "passed"])
    promotion.accept_candidate("m-accept", first, approval_required=False)
    promotion.accept_candidate("m-accept", second, approval_required=False)
    # then the second is the one champion, and each move is recorded with what it replaced
    assert _champions("m-accept") == [second], "exactly one champion, the latest accepted"
    history = promotion.champion_history("m-accept")
    assert [(move.action, move.previous, move.version) for move in history] == [
        ("gate", "", first),
        ("gate", first, second),
    ], f"every move recorded in order: {history}"


def test_promote_and_rollback_keep_one_champion_and_walk_back(store: Path) -> None:
    # given three accepted versions (champion: the third)
    first, second, third = _versions(store, "m-roll", ["passed", "passed", "passed"])
    for version in (first, second, third):
        promotion.accept_candidate("m-roll", version, approval_required=False)
    # when rolled back twice
    promotion.rollback("m-roll", "bad canary", "alice")
    assert _champions("m-roll") == [second], "the first rollback returns to the second version"
    promotion.rollback("m-roll", "still bad", "alice")
    assert _champions("m-roll") == [first], "a second rollback goes one champion further back"
    # then there is nothing before the first, and a promote moves forward again, with its reason
    with pytest.raises(RegistryError, match="no previous champion"):
        promotion.rollback("m-roll", "again", "alice")
    move = promotion.promote("m-roll", third, "fixed upstream", "bob")
    assert (move.version, move.previous, move.reason, move.by) == (third, first, "fixed upstream", "bob")
    assert _champions("m-roll") == [third], "exactly one champion after every move"
    assert len(promotion.champion_history("m-roll")) == 6, "three gates, two rollbacks, one promote"


def test_a_rejected_version_cannot_be_promoted(store: Path) -> None:
    (rejected,) = _versions(store, "m-reject", ["rejected"])
    with pytest.raises(RegistryError, match="did not pass the gate"):
        promotion.promote("m-reject", rejected, "I like it", "mallory")
    assert _champions("m-reject") == [], "no champion appears"


def test_approval_keeps_a_challenger_until_someone_approves(store: Path) -> None:
    # given a passing candidate under a policy that requires approval
    (candidate,) = _versions(store, "m-approve", ["passed"])
    alias = promotion.accept_candidate("m-approve", candidate, approval_required=True)
    # then it waits as challenger, not champion
    assert alias == "challenger" and _champions("m-approve") == [], "no champion before approval"
    # when approved by a named person / then it is champion and no longer challenger
    with pytest.raises(RegistryError, match="not the challenger"):
        promotion.approve("m-approve", "99", "carol")
    move = promotion.approve("m-approve", candidate, "carol")
    assert _champions("m-approve") == [candidate] and move.by == "carol", "approval promotes, and says who"
    aliases = MlflowClient().get_registered_model("m-approve").aliases
    assert "challenger" not in aliases, f"the challenger alias moves on with the promotion: {aliases}"
