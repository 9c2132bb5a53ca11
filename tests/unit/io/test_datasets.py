"""Data files are read as text with their checksum checked; bad files fail with one clear line."""

import gzip
import re
from pathlib import Path

import pytest

from guardflow.contract.validate_contract import validate_table
from guardflow.data.table import LINE, REASONS, typed_frame
from guardflow.errors import ContractError, DataError
from guardflow.io.datasets import content_sha256, read_split, read_table, write_table
from guardflow.settings import Settings
from tests.malformed_corpus import KINDS, ROWS, Kind, join_lines, kind_dataset, write_kind


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


# ---------------------------------------------------------------- the malformed corpus (tests/malformed_corpus.py)


def test_the_corpus_holds_at_least_30_kinds() -> None:
    names = [kind.name for kind in KINDS]
    assert len(set(names)) == len(names), "kind names must be unique"
    assert len(names) >= 30, f"the corpus needs at least 30 kinds, has {len(names)}"


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.name)
def test_every_kind_ends_accounted_for_or_in_one_line(
    kind: Kind, base_lines: list[bytes], adult_settings: Settings, tmp_path: Path
) -> None:
    # given a file of this kind
    path = write_kind(kind, base_lines, tmp_path)
    dataset = kind_dataset(adult_settings, kind)
    # when it is read and judged by the contract
    if kind.error is not None:
        error_type, pattern = kind.error
        with pytest.raises(error_type) as caught:
            validate_table(read_table(path, dataset), dataset, adult_settings.contract)
        # then one line names the file, the line and the problem
        message = str(caught.value)
        assert "\n" not in message, f"{kind.name}: the error must be one line, got {message!r}"
        assert str(path) in message, f"{kind.name}: the error must name the file, got {message!r}"
        assert re.search(pattern, message), f"{kind.name}: expected /{pattern}/ in {message!r}"
        return
    result = validate_table(read_table(path, dataset), dataset, adult_settings.contract)
    # then every data row is accepted or quarantined, and exactly the bad ones are quarantined, with reasons
    assert result.rows_in == kind.rows_in, f"{kind.name}: {kind.rows_in} data rows, counted {result.rows_in}"
    assert result.rows_in == result.rows_accepted + result.rows_quarantined, f"{kind.name}: rows were lost"
    assert len(result.accepted) + len(result.quarantined) == result.rows_in, f"{kind.name}: frames lost rows"
    assert set(result.quarantined.index) == set(kind.quarantined), (
        f"{kind.name}: quarantined {sorted(result.quarantined.index)}, expected {sorted(kind.quarantined)}"
    )
    for source_row, reason in kind.quarantined.items():
        reasons = result.quarantined.loc[source_row, REASONS]
        assert any(reason in text for text in reasons), f"{kind.name}: row {source_row} reasons {reasons}"


def test_malformed_lines_keep_their_text_and_line_number(
    base_lines: list[bytes], adult_settings: Settings, tmp_path: Path
) -> None:
    # given a file whose 4th line has an extra field and whose 10th holds a NUL byte, after a blank line
    lines = [
        *base_lines[:3],
        base_lines[3] + b", extra",
        b"",
        *base_lines[4:8],
        b"Hus\x00band",
        *base_lines[8:],
    ]
    path = tmp_path / "two-bad.csv"
    path.write_bytes(join_lines(lines))
    # when read
    table = read_table(path, adult_settings.dataset)
    # then both are kept as malformed, under their own line numbers, with their text as written
    assert list(table.malformed.index) == [3, 9], (
        f"source_row is the 0-based line, got {list(table.malformed.index)}"
    )
    assert table.malformed.loc[3, LINE] == (base_lines[3] + b", extra").decode(), "the line's text is kept"
    assert table.malformed.loc[9, LINE] == "Hus\\x00band", "a NUL byte is kept, escaped"
    assert list(table.rows.index[:4]) == [0, 1, 2, 5], (
        "the row after the blank line keeps its own line number"
    )
    assert table.row_count == ROWS + 1, "the blank line is not a row; both bad lines are"


@pytest.mark.parametrize(
    "kind", [kind for kind in KINDS if kind.error is None or kind.error[0] is ContractError]
)
def test_reading_in_tiny_blocks_finds_the_same_rows(
    kind: Kind, base_lines: list[bytes], adult_settings: Settings, tmp_path: Path
) -> None:
    # given a file of this kind / when read in 997-byte blocks (records cross every block boundary)
    path = write_kind(kind, base_lines, tmp_path)
    dataset = kind_dataset(adult_settings, kind)
    whole = read_table(path, dataset)
    pieces = read_table(path, dataset, block_bytes=997)
    # then the rows, the malformed lines and the checksum are the same as when read at once
    assert pieces.rows.equals(whole.rows), f"{kind.name}: rows differ when read in blocks"
    assert pieces.malformed.equals(whole.malformed), (
        f"{kind.name}: malformed lines differ when read in blocks"
    )
    assert pieces.sha256 == whole.sha256, f"{kind.name}: the checksum must not depend on the block size"
