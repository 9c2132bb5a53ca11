"""Bring your own data: the commands that turn a new file into a reviewed config and contract.

`draft_suite` (`guardflow contract draft`): reads the reference file (one without the columns the PII policy
drops is accepted), applies the PII policy and data minimisation exactly as a run would, warns about every column
that looks personal and has no policy, and drafts the contract of the declared columns only, quoting no value of
a column that looks personal. `init_config` (`guardflow init`): reads a new file (CSV with a header, or Parquet),
runs the PII detection on it and writes the config `guardflow.contract.draft_config` drafts, for review.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import pandas as pd

from guardflow.contract.draft_config import DataFile, DraftedConfig, dataset_id, draft_config
from guardflow.contract.draft_contract import DraftedSuite, draft_contract
from guardflow.errors import ConfigError, DataError
from guardflow.io.datasets import content_sha256, read_table
from guardflow.io.pii_key import read_pii_key
from guardflow.io.read_parquet import PARQUET_SUFFIXES, read_parquet_text
from guardflow.pii.guard_pii import contract_dataset, detect_pii, guard_pii, keep_declared, uncovered_findings
from guardflow.settings import PiiSettings, Settings, guardflow_home


@dataclass(frozen=True)
class DraftOutcome:
    """A drafted suite, where it came from, and the warnings about personal data the reviewer must act on."""

    drafted: DraftedSuite
    source: dict[str, object]
    warnings: tuple[str, ...]
    undeclared: tuple[str, ...]


def draft_suite(settings: Settings, data: Path | None, name: str) -> DraftOutcome:
    """Draft the contract of the declared columns from `data` (default: the configured training file)."""
    pii = settings.pii
    dropped = frozenset(column for column, policy in pii.columns.items() if policy in ("drop", "block"))
    if data is None:  # the configured file, checked against its sha256
        data_file = settings.dataset.train
        table = read_table(
            data_file.path, settings.dataset, data_file.skip_rows, data_file.sha256, optional_columns=dropped
        )
    else:
        # A file named on the command line is read as it is (no checksum): it is the file being onboarded.
        table = read_table(data, settings.dataset, optional_columns=dropped)
    present = set(map(str, table.rows.columns))
    policy = pii.model_copy(update={"columns": {c: p for c, p in pii.columns.items() if c in present}})
    result = guard_pii(table.rows, policy, key=partial(read_pii_key, guardflow_home()), stop=False)
    warnings = [
        f"'{finding.column}' looks like personal data ({', '.join(finding.kinds)}) and has no pii policy: add "
        f"pii.columns.{finding.column}: drop (or hash, to keep it as an identifier), or `train` will stop"
        for finding in uncovered_findings(result.findings, policy)
    ]
    blocked = [column for column, rule in policy.columns.items() if rule == "block"]
    warnings += [
        f"'{column}' is blocked by the pii policy: `train` stops while the file has it" for column in blocked
    ]
    rows, undeclared = keep_declared(result.rows, settings)
    private = frozenset(finding.column for finding in uncovered_findings(result.findings, policy))
    dataset = contract_dataset(settings)
    source: dict[str, object] = {"file": table.path.name, "sha256": table.sha256, "rows": table.row_count}
    drafted = draft_contract(rows, dataset, name, source, private_columns=private)
    return DraftOutcome(drafted=drafted, source=source, warnings=tuple(warnings), undeclared=undeclared)


def write_new_file(path: Path, text: str, force: bool) -> None:
    """Write a file a person will review; refuse to overwrite one unless forced (a reviewed copy would be lost)."""
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to overwrite it (a reviewed file would be lost)")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def init_config(
    data: Path,
    label: str,
    sensitive: list[str],
    out: Path,
    test: Path | None = None,
    encoding: str = "utf-8",
    force: bool = False,
) -> DraftedConfig:
    """Draft a config for `data` (a CSV with a header, or Parquet) to review, and write it to `out`.

    `test`: the held-out file to judge models on (default: `data` itself, with a warning in the notes).
    """
    rows = read_for_init(data, encoding)
    file_format = "parquet" if data.suffix.lower() in PARQUET_SUFFIXES else "csv"
    personal = {finding.column: finding.kinds for finding in detect_pii(rows, PiiSettings())}
    folder = out.resolve().parent
    files = {
        split: DataFile(os.path.relpath(path.resolve(), folder), content_sha256(path))
        for split, path in (("train", data), ("test", test or data))
    }
    drafted = draft_config(
        rows,
        dataset=dataset_id(out.stem),
        label=label,
        sensitive=sensitive,
        files=files,
        suite=f"{out.stem}.contract.json",
        personal=personal,
        file_format=file_format,
        encoding=encoding,
    )
    if test is None:
        note = (
            "no --test file: models are judged on their own training file (optimistic); name a held-out file"
        )
        drafted = replace(drafted, notes=(*drafted.notes, note))
    write_new_file(out, drafted.text, force)
    return drafted


def read_for_init(path: Path, encoding: str) -> pd.DataFrame:
    """A new file's rows as text: Parquet, or a CSV with a header line in `encoding` (unparsable lines skipped)."""
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return read_parquet_text(path, [])
    try:
        return pd.read_csv(
            path,
            dtype=str,
            encoding=encoding,
            keep_default_na=False,
            na_values=[""],
            skipinitialspace=True,
            on_bad_lines="skip",
        )
    except (UnicodeDecodeError, LookupError) as error:
        raise DataError(
            f"cannot read {path} as {encoding}: {error} (try --encoding latin-1 or cp1252)"
        ) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as error:
        raise DataError(f"cannot read {path} as CSV: {str(error).splitlines()[0]}") from None
