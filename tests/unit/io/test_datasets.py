"""Data files are read as text with their checksum checked; bad files fail with one clear line."""

import gzip
from pathlib import Path

import pytest

from guardflow.data.table import typed_frame
from guardflow.errors import DataError
from guardflow.io.datasets import content_sha256, read_split, read_table, write_table


def test_bundled_adult_matches_published_checksums(adult_settings) -> None:
    # given the bundled, compressed Adult files / when read / then their content is what UCI published
    train = read_split(adult_settings.dataset, "train")
    test = read_split(adult_settings.dataset, "test")
    assert train.row_count == 32_561, "adult.data has 32,561 rows"
    assert test.row_count == 16_281, "adult.test has 16,281 rows (its header line skipped)"
    assert list(train.rows.index[:3]) == [0, 1, 2], "source_row is the 0-based row in the file"


def test_test_labels_are_normalised(adult_settings) -> None:
    test = typed_frame(read_split(adult_settings.dataset, "test").rows, adult_settings.dataset)
    assert set(test["income"].unique()) == {">50K", "<=50K"}, (
        "the trailing dots of adult.test are aliased away"
    )


def test_checksum_mismatch_is_refused(adult_settings, tmp_path: Path) -> None:
    # given a copy of adult.data with one byte changed
    content = gzip.decompress(adult_settings.dataset.train.path.read_bytes())
    tampered = tmp_path / "adult.data"
    tampered.write_bytes(content.replace(b"State-gov", b"State-gox", 1))
    # when read against the published checksum / then it is refused
    with pytest.raises(DataError, match="checksum mismatch"):
        read_table(tampered, adult_settings.dataset, expected_sha256=adult_settings.dataset.train.sha256)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "data file is empty"), (b"\n\n", "data file is empty")],
)
def test_empty_file_is_refused(adult_settings, tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_table(path, adult_settings.dataset)


def test_missing_file_is_refused(adult_settings, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data file not found"):
        read_table(tmp_path / "nope.csv", adult_settings.dataset)


def test_written_tables_read_back_identically(adult_settings, tmp_path: Path) -> None:
    # given 200 rows of adult.data, missing values included
    rows = read_split(adult_settings.dataset, "train").rows.head(200)
    # when written in the dataset's format and read back
    path = tmp_path / "copy.csv.gz"
    digest = write_table(rows, path, adult_settings.dataset)
    again = read_table(path, adult_settings.dataset)
    # then nothing changed, and the recorded checksum is the content's
    assert again.rows.equals(rows), "a written table must read back unchanged"
    assert digest == content_sha256(path) == again.sha256, "write_table returns the content's sha256"
