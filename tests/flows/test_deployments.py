"""`guardflow deploy`'s deployments, registered on the session's Prefect API: names, cron, limits, trigger."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client

from flows.deployments import TRIGGER_FIELDS, deploy_dataset
from guardflow.errors import ConfigError
from tests.conftest import ROOT, write_adult_config


def test_deploy_registers_train_drift_check_and_a_triggered_retrain(tmp_path: Path) -> None:
    # given a config with an inbox, a drift cron and a train cron
    config = write_adult_config(
        tmp_path,
        drift={"inbox": str(tmp_path / "inbox"), "schedule": "*/5 * * * *"},
        deploy={"work_pool": "guardflow-test", "train_schedule": "0 3 * * *"},
    )
    # when its deployments are registered
    deployed = deploy_dataset(config)
    # then safety-train, drift-check-inbox and drift-retrain exist for the dataset, on the process pool
    assert [item.name for item in deployed] == [
        "safety-train/adult",
        "drift-check-inbox/adult",
        "drift-retrain/adult",
    ], deployed
    with get_client(sync_client=True) as client:
        pool = client.read_work_pool("guardflow-test")
        train = client.read_deployment_by_name("safety-train/adult")
        drift = client.read_deployment_by_name("drift-check-inbox/adult")
        retrain = client.read_deployment_by_name("drift-retrain/adult")
        automations = client.read_automations_by_name("drift-retrain-adult")
    assert pool.type == "process", f"a process work pool, got {pool.type}"
    assert [s.schedule.cron for s in train.schedules] == ["0 3 * * *"], "safety-train on its optional cron"
    assert [s.schedule.cron for s in drift.schedules] == ["*/5 * * * *"], "drift-check on the config's cron"
    assert drift.parameters == {"config_path": str(config.resolve())}, drift.parameters
    for deployment in (drift, retrain):
        limit = deployment.global_concurrency_limit
        assert limit is not None and limit.limit == 1, f"{deployment.name}: one run at a time"
    # and the retrain is started by the dataset's drift event, with parameters taken from its payload
    assert len(automations) == 1, f"one automation for the retrain trigger, got {automations}"
    trigger = automations[0].trigger
    assert trigger.expect == {"guardflow.drift.detected"}, trigger
    assert trigger.match.model_dump().get("prefect.resource.id") == "guardflow.dataset.adult", trigger.match
    parameters = automations[0].actions[0].parameters
    assert parameters["batch_sha256"] == "{{ event.payload.batch_sha256 }}", parameters
    assert parameters["config_path"] == str(config.resolve()), parameters


def test_deploy_needs_an_inbox(tmp_path: Path) -> None:
    # given a config without drift.inbox
    config = write_adult_config(tmp_path, drift={"inbox": None})
    # when its deployments are built / then the missing inbox is named before anything is registered
    with pytest.raises(ConfigError, match=r"drift.inbox must name a folder"):
        deploy_dataset(config)


def test_prefect_yaml_declares_the_same_deployments_for_prefect_deploy(adult_settings) -> None:
    # given the session's Prefect API, the work pool, and prefect.yaml at the repository root
    from prefect.settings import PREFECT_API_URL

    from flows.deployments import ensure_work_pool

    ensure_work_pool(adult_settings.deploy.work_pool)
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    # when `prefect deploy --all` runs there, without prompts
    result = subprocess.run(
        [str(Path(sys.executable).parent / "prefect"), "--no-prompt", "deploy", "--all"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (
        f"prefect deploy --all failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    # then the three deployments carry the repository's config, drift-check its cron, the retrain its trigger
    with get_client(sync_client=True) as client:
        drift = client.read_deployment_by_name("drift-check-inbox/adult")
        retrain = client.read_deployment_by_name("drift-retrain/adult")
        train = client.read_deployment_by_name("safety-train/adult")
        automations = client.read_automations_by_name("drift-retrain-adult")
    for deployment in (drift, retrain, train):
        assert deployment.parameters == {"config_path": "configs/adult.yaml"}, deployment.parameters
    assert [s.schedule.cron for s in drift.schedules] == [adult_settings.drift.schedule], (
        "same cron as the config"
    )
    mine = [a for a in automations if a.actions[0].parameters.get("config_path") == "configs/adult.yaml"]
    assert len(mine) == 1, f"prefect deploy must create the drift trigger, found {automations}"
    parameters = mine[0].actions[0].parameters
    assert set(parameters) == {"config_path", *TRIGGER_FIELDS}, (
        f"the trigger fills every parameter: {parameters}"
    )
