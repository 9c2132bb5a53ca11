"""The PII guard and data minimisation in every flow: personal data planted in the training and test files (in
columns with a policy, in undeclared columns the guard cannot recognise, in rows the contract quarantines and in
malformed lines) is found in no file train, validate, scan or drift write, anywhere; a column found with no policy
stops the run (exit 2)."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from flows.data_contract import data_contract
from flows.drift_check import drift_check
from flows.poisoning_scan import poisoning_scan
from flows.safety_train import safety_train
from guardflow.cli import main
from guardflow.io import registry
from guardflow.io.datasets import read_split, read_table, write_table
from guardflow.io.pii_key import KEY_FILE, read_pii_key
from guardflow.pii.guard_pii import LINE_HMAC, LINE_LENGTH, REDACTED
from guardflow.settings import guardflow_home
from tests.conftest import ROOT, WIRING_POISONING, write_adult_config
from tests.flows.conftest import LENIENT_GATE
from tests.lineage_validation import event_problems, read_events
from tests.pii_data import (
    CASE_PREFIX,
    EMAIL_DOMAIN,
    NICKNAMES,
    PII_COLUMNS,
    UNDECLARED_COLUMNS,
    PlantedValues,
    malformed_lines,
    planted_pii,
    planted_undeclared,
)

POLICIES = {column: "drop" for column in PII_COLUMNS} | {"email": "hash", "ssn": "hash"}
# Rows (0-based in the training file) the contract quarantines, each carrying planted personal data.
OUT_OF_RANGE_AGE = [10, 11, 12, 13, 14]
STRAY_EMAIL = [20, 21, 22]  # an email in the occupation column: redacted, then quarantined
MALFORMED = 6  # lines with one field too many, appended to the training file, quoting planted values


@dataclass(frozen=True)
class PlantedDataset:
    folder: Path
    train: Path
    test: Path
    columns: list[str]
    suite: Path
    planted: PlantedValues
    train_pii: pd.DataFrame
    malformed_rows: list[int]


def _with_pii(rows: pd.DataFrame, pii: pd.DataFrame, undeclared: pd.DataFrame) -> pd.DataFrame:
    """A name column before the data's own columns, the rest after, an undeclared one in the middle: drops must
    work anywhere."""
    rows = rows.reset_index(drop=True)
    middle = rows.columns.get_loc("sex")
    return pd.concat(
        [
            pii[["full_name"]],
            rows.iloc[:, :middle],
            undeclared[["alias"]],
            rows.iloc[:, middle:],
            pii.drop(columns="full_name"),
            undeclared[["case_ref"]],
        ],
        axis=1,
    )


def _append_lines(path: Path, lines: list[str]) -> list[int]:
    """Append lines to a gzip text file; their 0-based line numbers (`source_row`)."""
    text = gzip.decompress(path.read_bytes()).decode("utf-8")
    first = text.count("\n")
    path.write_bytes(gzip.compress((text + "".join(f"{line}\n" for line in lines)).encode(), mtime=0))
    return list(range(first, first + len(lines)))


@pytest.fixture(scope="module")
def planted_dataset(
    tmp_path_factory: pytest.TempPathFactory, adult_slice: Path, adult_settings
) -> PlantedDataset:
    folder = tmp_path_factory.mktemp("pii")
    dataset = adult_settings.dataset
    train_rows = read_table(adult_slice, dataset).rows.copy()
    test_rows = read_split(dataset, "test").rows
    train_pii, test_pii = planted_pii(len(train_rows), seed=1), planted_pii(len(test_rows), seed=2)
    train_rows.loc[OUT_OF_RANGE_AGE, "age"] = "150"
    train_rows.loc[STRAY_EMAIL, "occupation"] = train_pii.loc[STRAY_EMAIL, "email"].to_numpy()
    train = _with_pii(train_rows, train_pii, planted_undeclared(len(train_rows), seed=3))
    test = _with_pii(test_rows, test_pii, planted_undeclared(len(test_rows), seed=4))
    columns = list(train.columns)
    layout = dataset.model_copy(update={"columns": columns})
    inputs = folder / "inputs"
    inputs.mkdir()
    write_table(train, inputs / "train.csv.gz", layout)
    write_table(test, inputs / "test.csv.gz", layout)
    malformed_rows = _append_lines(inputs / "train.csv.gz", malformed_lines(train, MALFORMED))
    # The contract describes the columns left after the guard: Adult's, then the two hashed ones.
    suite = json.loads((ROOT / "expectations" / "adult.json").read_text())
    (ordered,) = [
        e for e in suite["expectations"] if e["type"] == "expect_table_columns_to_match_ordered_list"
    ]
    ordered["kwargs"]["column_list"] = [*dataset.columns, "email", "ssn"]
    suite_path = folder / "suite.json"
    suite_path.write_text(json.dumps(suite))
    planted = PlantedValues()
    planted.add(train_pii)
    planted.add(test_pii)
    return PlantedDataset(
        folder,
        inputs / "train.csv.gz",
        inputs / "test.csv.gz",
        columns,
        suite_path,
        planted,
        train_pii,
        malformed_rows,
    )


def _config(data: PlantedDataset, folder: Path, model_name: str, policies: dict[str, str]) -> Path:
    from guardflow.io.datasets import content_sha256

    folder.mkdir(parents=True, exist_ok=True)
    return write_adult_config(
        folder,
        poisoning=WIRING_POISONING,
        dataset={
            "columns": data.columns,
            "train": {"path": str(data.train), "sha256": content_sha256(data.train)},
            "test": {"path": str(data.test), "sha256": content_sha256(data.test)},
        },
        contract={"suite": str(data.suite)},
        registry={"model_name": model_name},
        gate=LENIENT_GATE,
        pii={"columns": policies},
    )


def adult_columns() -> list[str]:
    from guardflow.settings import load_settings

    return list(load_settings(ROOT / "configs" / "adult.yaml").dataset.columns or [])


def _prefect_files() -> list[Path]:
    """The session harness's database (with its journal files) and Prefect's result storage."""
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    url = settings.server.database.connection_url
    url_text = url.get_secret_value() if url is not None else ""
    files = []
    if url_text.startswith("sqlite"):
        database = Path(url_text.split(":///", 1)[1])
        files += [path for path in database.parent.glob(f"{database.name}*") if path.is_file()]
    storage = Path(settings.results.local_storage_path)
    files += [path for path in storage.rglob("*") if path.is_file()] if storage.is_dir() else []
    return files


def _written_files(*folders: Path) -> list[Path]:
    files = [path for folder in folders for path in folder.rglob("*") if path.is_file()]
    return [*files, *_prefect_files()]


def test_planted_pii_appears_in_no_file_the_run_writes(
    planted_dataset: PlantedDataset, tmp_path: Path
) -> None:
    data = planted_dataset
    # given the scanner finds every kind of planted value in the input file itself (so it can fail)
    found_in_input = {leak.what for leak in data.planted.leaks_in(data.train)}
    assert EMAIL_DOMAIN in found_in_input, "the scanner must see planted emails in the input"
    assert CASE_PREFIX in found_in_input and set(NICKNAMES) & found_in_input, "and undeclared columns' values"
    for column in ("phone", "ssn", "date_of_birth", "contact"):
        assert found_in_input & data.planted.by_column[column], (
            f"the scanner must see planted {column} values"
        )
    # when safety-train runs with a drop or hash policy for each planted column and none for the undeclared ones,
    # then validate, scan and a drift check of the test file run on the same config
    config = _config(data, tmp_path / "config", "adult-pii", POLICIES)
    run_dir = tmp_path / "run"
    summary = safety_train(str(config), str(run_dir))
    assert summary.status == "promoted", (
        f"the guarded run reaches the registry, got {summary.status}: {summary.error}"
    )
    checked = data_contract(str(config), str(tmp_path / "validate"))
    scanned = poisoning_scan(str(config), str(tmp_path / "scan"))
    drifted = drift_check(str(config), str(data.test), str(tmp_path / "drift"))
    statuses = (checked.status, scanned.status, drifted.status)
    assert statuses[:2] == ("validated", "scanned") and drifted.status != "failed", f"flows ran: {statuses}"
    # then no planted value is in any file under the run folders, $GUARDFLOW_HOME (MLflow store and artifacts,
    # lineage, Prefect home) or the Prefect test database
    files = _written_files(tmp_path, guardflow_home())
    assert len(files) > 40 and any(path.suffix == ".parquet" for path in files), f"scanned {len(files)} files"
    leaks = [leak for path in files for leak in data.planted.leaks_in(path)]
    assert leaks == [], f"planted PII found in written files: {leaks[:5]}"

    # and the run record names (only) the undeclared columns it dropped
    record = json.loads((run_dir / "summary.json").read_text())["columns"]
    assert record["undeclared_dropped"] == list(UNDECLARED_COLUMNS), f"undeclared columns named: {record}"
    assert record["kept"] == [*adult_columns(), "email", "ssn"], f"only declared columns kept: {record}"
    assert record["malformed_lines_masked"] == MALFORMED, f"every malformed line masked: {record}"
    # and a malformed line is in the quarantine as its line number, length and keyed hash, not its text
    quarantine = pd.read_parquet(run_dir / "quarantine.parquet").set_index("source_row")
    assert set(data.malformed_rows) <= set(quarantine.index), "malformed lines are quarantined"
    assert "line" not in quarantine.columns, "no malformed line's text is kept unless the config opts in"
    key = read_pii_key(guardflow_home())
    text = gzip.decompress(data.train.read_bytes()).decode().splitlines()
    for row in data.malformed_rows:
        digest = hmac.new(key, text[row].encode(), hashlib.sha256).hexdigest()
        assert quarantine.at[row, LINE_HMAC] == digest, "a malformed line keeps its keyed hash"
        assert quarantine.at[row, LINE_LENGTH] == len(text[row]), "and its length"

    # and the quarantined rows kept their keyed-hash email, the stray email is redacted, dropped columns are gone
    assert set(OUT_OF_RANGE_AGE + STRAY_EMAIL) <= set(quarantine.index), "planted bad rows are quarantined"
    dropped = (set(POLICIES) - {"email", "ssn"}) | set(UNDECLARED_COLUMNS)
    assert not set(quarantine.columns) & dropped, "dropped and undeclared columns never reach it"
    for row in OUT_OF_RANGE_AGE:
        expected = hmac.new(key, data.train_pii.at[row, "email"].encode(), hashlib.sha256).hexdigest()
        assert quarantine.at[row, "email"] == expected, (
            "a hashed column holds the HMAC-SHA256 under the run's key"
        )
    assert (quarantine.loc[STRAY_EMAIL, "occupation"] == REDACTED).all(), "stray emails are redacted"
    assert (guardflow_home() / KEY_FILE).stat().st_mode & 0o077 == 0, "the key file is private to its owner"

    # and the guard's lineage facet names what it found and did, valid against its schema
    lineage = json.loads((run_dir / "summary.json").read_text())["lineage"]
    events = [
        event
        for event in read_events(Path(lineage["path"]))
        if event["eventType"] == "COMPLETE"
        and event["run"].get("facets", {}).get("parent", {}).get("run", {}).get("runId") == lineage["run_id"]
        and event["job"]["name"].endswith(".guard_pii_train")
    ]
    assert len(events) == 1, f"one guard_pii_train COMPLETE event, got {len(events)}"
    assert not event_problems(events[0]), event_problems(events[0])
    facet = events[0]["run"]["facets"]["guardflow_pii"]
    assert {finding["column"] for finding in facet["findings"]} == set(PII_COLUMNS), facet["findings"]
    assert facet["hashed"] == ["email", "ssn"] and facet["redactedValues"] == {"occupation": len(STRAY_EMAIL)}


def test_detected_column_without_policy_is_exit_2_naming_it_and_nothing_is_trained(
    planted_dataset: PlantedDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a policy for every planted column but `contact`, whose name says nothing but whose values are phones
    policies = {column: policy for column, policy in POLICIES.items() if column != "contact"}
    config = _config(planted_dataset, tmp_path / "config", "adult-pii-blocked", policies)
    run_dir = tmp_path / "run"
    # when the CLI trains on it
    code = main(["train", "--config", str(config), "--run-dir", str(run_dir)])
    # then exit 2, one line naming the column and what it holds, and no value
    errors = capsys.readouterr().err.strip().splitlines()
    assert code == 2, f"personal data without a policy must exit 2, got {code}"
    assert len(errors) == 1 and "'contact'" in errors[0] and "phone" in errors[0], f"one clear line: {errors}"
    assert not any(value in errors[0] for value in planted_dataset.planted.by_column["contact"]), "no value"
    # and nothing was trained or registered, and the failed run's own files hold no planted value
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed", "the summary says failed"
    assert not (run_dir / "model").exists() and not (run_dir / "quarantine.parquet").exists(), "nothing ran"
    registry.configure_tracking(guardflow_home(), experiment="guardflow-adult")
    assert not MlflowClient().search_model_versions("name='adult-pii-blocked'"), "no version registered"
    leaks = [leak for path in _written_files(run_dir) for leak in planted_dataset.planted.leaks_in(path)]
    assert leaks == [], f"planted PII in the failed run's files: {leaks[:5]}"


def test_tasks_that_hold_raw_rows_never_persist_their_results() -> None:
    # given the tasks whose results carry rows as read, before or while the guard runs
    from tasks.check_drift import load_reference
    from tasks.guard_pii import guard_data, guard_reference
    from tasks.load_data import load_data

    # then none may write its result to Prefect's storage, whatever PREFECT_RESULTS_PERSIST_BY_DEFAULT says
    for task in (load_data, load_reference, guard_data, guard_reference):
        assert task.persist_result is False, f"{task.name} must set persist_result=False"
