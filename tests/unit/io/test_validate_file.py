"""Chunked contract validation of a file: the same verdict, counts and quarantine as validating it whole."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from guardflow.contract.validate_contract import validate_table
from guardflow.data.table import LINE, REASONS, SOURCE_ROW
from guardflow.errors import ContractError
from guardflow.io.datasets import read_table
from guardflow.io.validate_file import validate_file
from guardflow.settings import Settings
from tests.malformed_corpus import each_field, join_lines, with_field


def _mixed_file(lines: list[bytes], folder: Path) -> Path:
    """300 rows with one ragged line, one NUL line, an impossible age and an unseen category, in 3 copies."""
    rows = [*lines, *lines, *lines]
    rows[4] += b", extra"
    rows = with_field(rows, 150, "relationship", b"Hus\x00band")
    rows = with_field(rows, 170, "age", b"300")
    rows = with_field(rows, 290, "workclass", b"Wizard")
    path = folder / "mixed.csv"
    path.write_bytes(join_lines(rows))
    return path


def test_chunked_validation_matches_whole_frame_validation(
    base_lines: list[bytes], adult_settings: Settings, tmp_path: Path
) -> None:
    # given a 300-row file with four bad rows
    path = _mixed_file(base_lines, tmp_path)
    whole = validate_table(
        read_table(path, adult_settings.dataset), adult_settings.dataset, adult_settings.contract
    )
    # when validated in chunks of about 10 kB (3 chunks), in this process (on Dask workers: test_on_dask.py)
    result = validate_file(
        path,
        adult_settings.dataset,
        adult_settings.contract,
        tmp_path / "quarantine.parquet",
        chunk_bytes=10_000,
    )
    # then the counts, the outcomes and the quarantined rows are those of the whole-frame validation
    assert result.chunks >= 3, f"a 33 kB file in 10 kB chunks makes 3 or more chunks, got {result.chunks}"
    assert (result.rows_in, result.rows_accepted, result.rows_quarantined) == (
        whole.rows_in,
        whole.rows_accepted,
        whole.rows_quarantined,
    ), "chunked and whole-frame counts must agree"
    assert result.rows_in == 300 and result.rows_quarantined == 4, f"300 rows, 4 bad, got {result}"
    assert result.outcomes == whole.outcomes, "every expectation's outcome must be judged on the whole file"
    quarantine = pq.read_table(result.quarantine_path).to_pandas()
    assert list(quarantine[SOURCE_ROW]) == [4, 150, 170, 290], (
        f"quarantined rows: {list(quarantine[SOURCE_ROW])}"
    )
    assert quarantine[REASONS].map(list).tolist() == whole.quarantined[REASONS].tolist(), "same reasons"
    assert quarantine.loc[0, LINE].endswith(", extra") and pd.isna(quarantine.loc[0, "age"]), (
        "a malformed line is kept as its text"
    )
    assert quarantine.loc[2, "age"] == "300", "a quarantined row keeps its original values"


def test_chunked_validation_judges_mostly_on_the_whole_file(
    base_lines: list[bytes], adult_settings: Settings, tmp_path: Path
) -> None:
    # given 300 rows whose occupation is missing in the first 25 (30% of the first chunk, 12% of the file)
    rows = each_field(base_lines[:25], "occupation", b"?") + base_lines[25:] + base_lines + base_lines
    path = tmp_path / "mostly.csv"
    path.write_bytes(join_lines(rows))
    # when validated in 3 chunks / then the file passes: the 85% not-null rule holds over the whole file
    result = validate_file(
        path, adult_settings.dataset, adult_settings.contract, tmp_path / "q.parquet", chunk_bytes=10_000
    )
    assert result.chunks >= 3 and result.rows_in == 300, f"3 or more chunks of 300 rows, got {result}"
    occupation = next(o for o in result.outcomes if o.column == "occupation" and o.on_failure == "stop")
    assert occupation.success, "about 36 missing of 300 is within the 15% the contract tolerates"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda rows: with_field(rows, 250, "income", b"maybe"),
            r"income: .*in_set failed.*first at line 251",
        ),
        (lambda rows: each_field(rows, "education", b"?"), r"'education' is entirely null"),
    ],
    ids=["label_outside_its_set", "all_null_over_every_chunk"],
)
def test_chunked_validation_stops_bad_batches(
    change: Callable[[list[bytes]], list[bytes]],
    message: str,
    base_lines: list[bytes],
    adult_settings: Settings,
    tmp_path: Path,
) -> None:
    # given a 300-row file with a batch-level problem
    path = tmp_path / "bad-batch.csv"
    path.write_bytes(join_lines(change([*base_lines, *base_lines, *base_lines])))
    # when validated in chunks / then one line names the file and the problem
    with pytest.raises(ContractError, match=message) as caught:
        validate_file(
            path, adult_settings.dataset, adult_settings.contract, tmp_path / "q.parquet", chunk_bytes=10_000
        )
    assert str(path) in str(caught.value) and "\n" not in str(caught.value), "one line naming the file"
