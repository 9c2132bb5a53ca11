"""The config is validated once, strictly: every file in tests/configs/valid loads and every file in
tests/configs/invalid fails with the one-line message its first line expects."""

from pathlib import Path

import pytest

from guardflow.errors import ConfigError
from guardflow.settings import NumericFeature, Settings, load_settings, settings_hash, settings_json_schema
from tests.conftest import ADULT_CONFIG

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
VALID = [*sorted((CONFIGS / "valid").glob("*.yaml")), ADULT_CONFIG]
INVALID = sorted((CONFIGS / "invalid").glob("*.yaml"))


@pytest.mark.parametrize("path", VALID, ids=lambda path: path.stem)
def test_valid_configs_load(path: Path) -> None:
    # given a valid config / when it is loaded
    settings = load_settings(path)
    # then its data paths are absolute and point at real files
    assert settings.dataset.train.path.is_absolute(), (
        "relative paths must resolve against the config's folder"
    )
    assert settings.dataset.train.path.is_file(), f"train file of {path.name} must exist"


@pytest.mark.parametrize("path", INVALID, ids=lambda path: path.stem)
def test_invalid_configs_fail_with_one_clear_line(path: Path) -> None:
    # given an invalid config whose first line says what the error must mention
    expected = path.read_text().splitlines()[0].removeprefix("# expect: ")
    # when it is loaded
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    # then the error is one line and names the problem
    message = str(caught.value)
    assert "\n" not in message, f"error must be one line, got {message!r}"
    assert expected in message, f"{path.name}: expected {expected!r} in {message!r}"


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.yaml")


def test_adult_config_has_the_required_policy(adult_settings) -> None:
    # given the bundled config / then it carries the privacy and sensitive-attribute policy of the issue
    assert adult_settings.privacy.target_epsilon == 1.0, "Adult trains at epsilon 1"
    assert adult_settings.privacy.delta == 1e-5, "Adult trains at delta 1e-5"
    assert adult_settings.dataset.sensitive == ["sex", "race"], "sex and race are the sensitive attributes"
    numeric = [f for f in adult_settings.dataset.features.values() if isinstance(f, NumericFeature)]
    assert all(feature.min < feature.max for feature in numeric), "every numeric feature has public bounds"


def test_settings_hash_is_stable_and_sensitive(adult_settings) -> None:
    same = load_settings(ADULT_CONFIG)
    assert settings_hash(adult_settings) == settings_hash(same), "the same config must hash the same"
    changed = adult_settings.model_copy(
        update={"model": adult_settings.model.model_copy(update={"seed": 99})}
    )
    assert settings_hash(changed) != settings_hash(adult_settings), "a changed seed must change the hash"


def test_json_schema_names_every_section() -> None:
    schema = settings_json_schema()
    for section in ("dataset", "contract", "privacy", "gate", "drift", "registry", "lineage"):
        assert f'"{section}"' in schema, f"schema must describe {section}"


def test_server_settings_resolve_the_inbox_and_default_safely(adult_settings, tmp_path: Path) -> None:
    # given the bundled config, and a minimal one without any server section
    minimal = load_settings(CONFIGS / "valid" / "minimal.yaml")
    # then the inbox resolves against the config's folder, and the defaults need no server to load
    inbox = adult_settings.drift.inbox
    assert inbox is not None and inbox == ADULT_CONFIG.parent.parent / "inbox" / "adult", f"inbox: {inbox}"
    assert adult_settings.drift.schedule == "*/10 * * * *", "drift-check runs every ten minutes"
    assert adult_settings.drift.cooldown_minutes == 60, "one retrain an hour at most"
    assert minimal.drift.inbox is None and minimal.deploy.work_pool == "guardflow", "safe defaults"
    assert minimal.deploy.train_schedule is None, "safety-train is manual unless a cron is configured"


def test_every_section_but_dataset_and_contract_has_a_documented_default() -> None:
    # given the config's JSON schema (what `guardflow config-schema` prints)
    schema = Settings.model_json_schema()
    # then only dataset and contract are required, and the others show their defaults
    assert schema["required"] == ["dataset", "contract"], f"required sections: {schema['required']}"
    for section in ("privacy", "gate", "registry"):
        assert "default" in schema["properties"][section], f"{section} shows its default"
    # and a config with only those two sections trains under `guardflow-<id>` with the default budget
    settings = load_settings(CONFIGS / "valid" / "dataset_and_contract_only.yaml")
    assert settings.registry.model_name == "guardflow-tiny", settings.registry
    assert (settings.privacy.target_epsilon, settings.privacy.delta) == (1.0, 1.0e-5), settings.privacy
    assert settings.dataset.reviewed is False and settings.dataset.encoding == "latin-1", settings.dataset
