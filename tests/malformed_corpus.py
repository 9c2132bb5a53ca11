"""Malformed input loses nothing: a corpus of bad files, generated here, each ending in a known way.

Every kind below is written to tmp_path from the first 100 lines of adult.data (or, for header kinds, those
lines under a header row) and read with `read_table`, then judged with `validate_table`. A kind ends either
with `rows_in == rows_accepted + rows_quarantined` and exactly the bad rows quarantined (with a reason naming
the problem, or the expectation and column), or with one `GuardflowError` line naming the file, the line
and the problem (exit 2 in the CLI). Never a traceback, never a row dropped: rows_in is checked against
the number of data rows the file was built with.

`source_row` is the 0-based line number in the (decompressed) file where the row starts: the header,
`skip_rows` lines and blank lines count as lines, so the first data row under a header is source_row 1.
Error messages name lines 1-based, as editors do (source_row N is "line N+1"). Blank lines are not rows.

| kind | outcome |
|---|---|
| clean | all 100 rows accepted |
| ragged row, too many fields | that row quarantined: "malformed: 16 fields, expected 15" |
| ragged row, too few fields | that row quarantined: "malformed: 10 fields, expected 15" |
| single-field line (like adult.test's "|1x3 Cross validator") | quarantined: "1 field" |
| embedded newline in a quoted field | one record over two lines, parsed; breaks the workclass set: quarantined |
| quoted fields, all valid | accepted |
| escaped quotes ("") in a quoted field | parsed; the value breaks the occupation set: quarantined |
| quotes inside a field (5'10" style) | kept as written; breaks the workclass set: quarantined |
| quote never closed (last line) | quarantined: "a quote opened on this line never closes" |
| CRLF line endings | all accepted |
| UTF-8 BOM | BOM dropped, all accepted |
| NUL byte in a line | quarantined: "NUL byte" |
| non-UTF-8 byte in a line | quarantined: "not UTF-8 (byte 0xe9)" |
| valid UTF-8 non-ASCII category | parsed; breaks the native-country set: quarantined |
| "N/A" in a numeric column | typed to NaN: quarantined by age not-null |
| text in a numeric column | typed to NaN: quarantined by hours-per-week not-null |
| +inf | quarantined by capital-gain between |
| -inf | quarantined by capital-loss between |
| huge numbers (1e400, 10^23) | quarantined by fnlwgt and age between |
| "nan" as text | quarantined by age not-null |
| unseen category | quarantined by workclass in-set |
| missing-value marker "?" in a required column | quarantined by sex not-null |
| trailing space in a category | quarantined by sex in-set |
| repeated header line inside the data | quarantined: "a repeated header line" |
| duplicated rows | all accepted (the poisoning scan judges floods) |
| blank and whitespace-only lines | not rows; source_row keeps counting lines |
| no newline at the end | all accepted |
| header file with a UTF-8 BOM | header read, all accepted |
| 0-byte file | DataError "data file is empty: FILE" (no line to name) |
| only blank lines | DataError "data file is empty: FILE" |
| truncated gzip | DataError "line N: cannot read further" |
| .gz name, not gzip | DataError "line 1: cannot read further" |
| wrong delimiter (;) | DataError "line 1: malformed: 1 field ...; no line parses" |
| tab-separated | DataError, same |
| single-column file | DataError, same |
| extra column in every row | DataError "16 fields, expected 15" |
| missing column in every row | DataError "line 1: 14 fields, expected 15; ... column 'sex' looks missing" |
| CR-only line endings (old Mac) | DataError: the whole file is one malformed line |
| UTF-16 file | DataError "line 1: the file is UTF-16" |
| random binary bytes | DataError, line 1 |
| header only | DataError "header only", line 2 |
| duplicate header names | DataError "line 1: duplicate header names" |
| renamed column in the header | DataError "line 1: ... missing columns ['sex']; unexpected columns ['gender']" |
| missing column in the header | DataError "line 1: ... missing columns" |
| extra column in the header | DataError "line 1: ... unexpected columns" |
| reordered header columns | ContractError: the ordered-columns expectation |
| unseen label value | ContractError: income in-set, "first at line N" |
| all-NaN column | ContractError "'age' is entirely null" |
| numeric column of text only | ContractError "'age' has no value that parses as a number" |
| too many missing in a `mostly` column | ContractError: occupation not-null, needs 85% |
| too many malformed rows (share over the limit) | ContractError "rows quarantined ... first at line N" |
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from guardflow.contract.validate_contract import validate_table
from guardflow.data.table import LINE, REASONS, SOURCE_ROW
from guardflow.errors import ContractError, DataError, GuardflowError
from guardflow.io.datasets import read_table
from guardflow.io.validate_file import validate_file
from guardflow.settings import DatasetSettings, Settings
from tests.conftest import run_guardflow, write_adult_config

ROWS = 100
COLUMNS_LINE = (
    b"age,workclass,fnlwgt,education,education-num,marital-status,occupation,relationship,race,sex,"
    b"capital-gain,capital-loss,hours-per-week,native-country,income"
)
FIELD = {name: index for index, name in enumerate(COLUMNS_LINE.decode().split(","))}


@pytest.fixture(scope="module")
def base_lines(adult_settings: Settings) -> list[bytes]:
    """The first 100 lines of adult.data, as written there (", " between fields)."""
    content = gzip.decompress(adult_settings.dataset.train.path.read_bytes())
    return content.split(b"\n")[:ROWS]


def _join(lines: list[bytes], end: bytes = b"\n") -> bytes:
    return end.join(lines) + end


def _with(lines: list[bytes], row: int, column: str, value: bytes) -> list[bytes]:
    """The lines with one field of one row replaced."""
    changed = list(lines)
    fields = changed[row].split(b", ")
    fields[FIELD[column]] = value
    changed[row] = b", ".join(fields)
    return changed


def _each_field(lines: list[bytes], column: str, value: bytes) -> list[bytes]:
    changed = lines
    for row in range(len(lines)):
        changed = _with(changed, row, column, value)
    return changed


@dataclass(frozen=True)
class Kind:
    """One kind of bad file: how to build it, and how it must end."""

    name: str
    build: Callable[[list[bytes]], bytes]
    rows_in: int = ROWS
    quarantined: dict[int, str] = field(default_factory=dict)  # source_row -> a piece of its reason
    error: tuple[type[GuardflowError], str] | None = None  # exception type, regex its message must match
    header: bool = False
    suffix: str = ".csv"


def _gzip_truncated(lines: list[bytes]) -> bytes:
    whole = gzip.compress(_join(lines), mtime=0)
    return whole[: len(whole) // 2]


def _latin1_every_fourth(lines: list[bytes]) -> bytes:
    changed = lines
    for row in range(0, len(lines), 4):
        changed = _with(changed, row, "native-country", b"M\xe9xico")
    return _join(changed)


def _blank_lines(lines: list[bytes]) -> bytes:
    return _join([b"", *lines[:50], b"", b"   ", *lines[50:], b""])


def _duplicate_header(lines: list[bytes]) -> bytes:
    return _join([COLUMNS_LINE.replace(b"race", b"sex"), *[line.replace(b", ", b",") for line in lines]])


def _header(lines: list[bytes], header: bytes = COLUMNS_LINE) -> bytes:
    return _join([header, *lines])


def _drop_field(line: bytes, column: str) -> bytes:
    fields = line.split(b", ")
    del fields[FIELD[column]]
    return b", ".join(fields)


KINDS = [
    Kind("clean", lambda lines: _join(lines)),
    Kind(
        "ragged_long",
        lambda lines: _join([*lines[:4], lines[4] + b", extra", *lines[5:]]),
        quarantined={4: "malformed: 16 fields, expected 15"},
    ),
    Kind(
        "ragged_short",
        lambda lines: _join([*lines[:7], b", ".join(lines[7].split(b", ")[:10]), *lines[8:]]),
        quarantined={7: "malformed: 10 fields, expected 15"},
    ),
    Kind(
        "single_field_line",
        lambda lines: _join([b"|1x3 Cross validator", *lines]),
        rows_in=ROWS + 1,
        quarantined={0: "malformed: 1 field, expected 15"},
    ),
    Kind(
        "embedded_newline_in_quotes",
        lambda lines: _join(_with(lines, 2, "workclass", b'"State-\ngov"')),
        quarantined={2: "workclass: expect_column_values_to_be_in_set"},
    ),
    Kind(
        "quoted_fields_valid",
        lambda lines: _join([b",".join(b'"' + part + b'"' for part in line.split(b", ")) for line in lines]),
    ),
    Kind(
        "escaped_quotes",
        lambda lines: _join(_with(lines, 5, "occupation", b'"Exec ""managerial"""')),
        quarantined={5: "occupation: expect_column_values_to_be_in_set"},
    ),
    Kind(
        "quotes_inside_a_field",
        lambda lines: _join(_with(lines, 6, "workclass", b'Sta"te-g"ov')),
        quarantined={6: "workclass: expect_column_values_to_be_in_set"},
    ),
    Kind(
        "quote_never_closed",
        lambda lines: _join(_with(lines, ROWS - 1, "workclass", b'"Private')),
        quarantined={ROWS - 1: "a quote opened on this line never closes"},
    ),
    Kind("crlf_line_endings", lambda lines: _join(lines, b"\r\n")),
    Kind("utf8_bom", lambda lines: b"\xef\xbb\xbf" + _join(lines)),
    Kind(
        "nul_byte",
        lambda lines: _join(_with(lines, 9, "relationship", b"Hus\x00band")),
        quarantined={9: "malformed: NUL byte"},
    ),
    Kind(
        "non_utf8_byte",
        lambda lines: _join(_with(lines, 11, "native-country", b"M\xe9xico")),
        quarantined={11: "malformed: not UTF-8 (byte 0xe9"},
    ),
    Kind(
        "utf8_unseen_category",
        lambda lines: _join(_with(lines, 11, "native-country", "México".encode())),
        quarantined={11: "native-country: expect_column_values_to_be_in_set"},
    ),
    Kind(
        "na_text_in_numeric",
        lambda lines: _join(_with(lines, 19, "age", b"N/A")),
        quarantined={19: "age: expect_column_values_to_not_be_null"},
    ),
    Kind(
        "text_in_numeric",
        lambda lines: _join(_with(lines, 20, "hours-per-week", b"forty")),
        quarantined={20: "hours-per-week: expect_column_values_to_not_be_null"},
    ),
    Kind(
        "plus_inf",
        lambda lines: _join(_with(lines, 21, "capital-gain", b"inf")),
        quarantined={21: "capital-gain: expect_column_values_to_be_between"},
    ),
    Kind(
        "minus_inf",
        lambda lines: _join(_with(lines, 22, "capital-loss", b"-inf")),
        quarantined={22: "capital-loss: expect_column_values_to_be_between"},
    ),
    Kind(
        "huge_numbers",
        lambda lines: _join(_with(_with(lines, 23, "fnlwgt", b"1e400"), 24, "age", b"9" * 23)),
        quarantined={
            23: "fnlwgt: expect_column_values_to_be_between",
            24: "age: expect_column_values_to_be_between",
        },
    ),
    Kind(
        "nan_text",
        lambda lines: _join(_with(lines, 25, "age", b"nan")),
        quarantined={25: "age: expect_column_values_to_not_be_null"},
    ),
    Kind(
        "unseen_category",
        lambda lines: _join(_with(lines, 26, "workclass", b"Wizard")),
        quarantined={26: "workclass: expect_column_values_to_be_in_set"},
    ),
    Kind(
        "missing_marker_in_required_column",
        lambda lines: _join(_with(lines, 27, "sex", b"?")),
        quarantined={27: "sex: expect_column_values_to_not_be_null"},
    ),
    Kind(
        "trailing_space_in_category",
        lambda lines: _join(_with(lines, 28, "sex", b"Male ")),
        quarantined={28: "sex: expect_column_values_to_be_in_set"},
    ),
    Kind(
        "header_line_in_headerless_file",
        lambda lines: _join([*lines[:30], COLUMNS_LINE, *lines[30:]]),
        rows_in=ROWS + 1,
        quarantined={30: "malformed: a repeated header line"},
    ),
    Kind("duplicated_rows", lambda lines: _join([*lines, lines[0], lines[0], lines[0]]), rows_in=ROWS + 3),
    Kind("blank_and_whitespace_lines", _blank_lines),
    Kind("no_final_newline", lambda lines: _join(lines)[:-1]),
    Kind("header_with_bom", lambda lines: b"\xef\xbb\xbf" + _header(lines), header=True),
    Kind("empty_0_bytes", lambda lines: b"", error=(DataError, r"^data file is empty: \S+$")),
    Kind("only_blank_lines", lambda lines: b"\n \n\n", error=(DataError, r"^data file is empty: \S+$")),
    Kind(
        "truncated_gzip",
        _gzip_truncated,
        suffix=".csv.gz",
        error=(DataError, r"line \d+: cannot read further"),
    ),
    Kind(
        "gz_name_not_gzip",
        lambda lines: _join(lines),
        suffix=".gz",
        error=(DataError, r"line 1: cannot read"),
    ),
    Kind(
        "wrong_delimiter",
        lambda lines: _join([line.replace(b", ", b";") for line in lines]),
        error=(DataError, r"line 1: malformed: 1 field, expected 15; no line of the file parses"),
    ),
    Kind(
        "tab_separated",
        lambda lines: _join([line.replace(b", ", b"\t") for line in lines]),
        error=(DataError, r"line 1: malformed: 1 field, expected 15"),
    ),
    Kind(
        "single_column_file",
        lambda lines: _join([line.split(b", ")[0] for line in lines]),
        error=(DataError, r"line 1: malformed: 1 field, expected 15"),
    ),
    Kind(
        "extra_column_everywhere",
        lambda lines: _join([line + b", 1" for line in lines]),
        error=(DataError, r"line 1: malformed: 16 fields, expected 15"),
    ),
    Kind(
        "missing_column_everywhere",
        lambda lines: _join([_drop_field(line, "sex") for line in lines]),
        error=(DataError, r"line 1: malformed: 14 fields, expected 15; .*column 'sex' looks missing"),
    ),
    Kind(
        "cr_only_line_endings",
        lambda lines: b"\r".join(lines) + b"\r",
        error=(DataError, r"line 1: malformed: \d+ fields, expected 15"),
    ),
    Kind(
        "utf16_file",
        lambda lines: _join(lines).decode().encode("utf-16"),
        error=(DataError, r"line 1: the file is UTF-16"),
    ),
    Kind(
        "random_binary",
        lambda lines: bytes(range(256)) * 4,
        error=(DataError, r"line 1: malformed: .*no line of the file parses"),
    ),
    Kind("header_only", lambda lines: _header([]), header=True, error=(DataError, r"header only: .*line 2")),
    Kind(
        "duplicate_header_names",
        _duplicate_header,
        header=True,
        error=(DataError, r"line 1: duplicate header names \['sex'\]"),
    ),
    Kind(
        "renamed_header_column",
        lambda lines: _header(lines, COLUMNS_LINE.replace(b"sex", b"gender")),
        header=True,
        error=(DataError, r"line 1: .*missing columns \['sex'\]; unexpected columns \['gender'\]"),
    ),
    Kind(
        "missing_header_column",
        lambda lines: _header(
            [_drop_field(line, "sex") for line in lines], COLUMNS_LINE.replace(b"sex,", b"")
        ),
        header=True,
        error=(DataError, r"line 1: .*missing columns \['sex'\]"),
    ),
    Kind(
        "extra_header_column",
        lambda lines: _header([line + b", 1" for line in lines], COLUMNS_LINE + b",bonus"),
        header=True,
        error=(DataError, r"line 1: .*unexpected columns \['bonus'\]"),
    ),
    Kind(
        "reordered_header_columns",
        lambda lines: _header(
            [b", ".join(reversed(line.split(b", "))) for line in lines],
            b",".join(reversed(COLUMNS_LINE.split(b","))),
        ),
        header=True,
        error=(ContractError, r"expect_table_columns_to_match_ordered_list failed"),
    ),
    Kind(
        "unseen_label",
        lambda lines: _join(_with(lines, 40, "income", b"maybe")),
        error=(
            ContractError,
            r"income: expect_column_values_to_be_in_set failed: 1 of 100 .*first at line 41",
        ),
    ),
    Kind(
        "all_nan_column",
        lambda lines: _join(_each_field(lines, "education", b"?")),
        error=(ContractError, r"'education' is entirely null"),
    ),
    Kind(
        "numeric_column_all_text",
        lambda lines: _join(_each_field(lines, "age", b"old")),
        error=(ContractError, r"'age' has no value that parses as a number"),
    ),
    Kind(
        "mostly_column_too_often_missing",
        lambda lines: _join(_each_field(lines[:30], "occupation", b"?") + lines[30:]),
        error=(ContractError, r"occupation: expect_column_values_to_not_be_null failed: 3\d of 100 .*85%"),
    ),
    Kind(
        "malformed_share_over_limit",
        _latin1_every_fourth,
        error=(ContractError, r"25 of 100 rows quarantined .*not UTF-8.*first at line 1"),
    ),
]


def _dataset(settings: Settings, kind: Kind) -> DatasetSettings:
    return settings.dataset.model_copy(update={"header": kind.header})


def _write(kind: Kind, lines: list[bytes], folder: Path) -> Path:
    path = folder / f"{kind.name}{kind.suffix}"
    path.write_bytes(kind.build(lines))
    return path


def test_the_corpus_holds_at_least_30_kinds() -> None:
    names = [kind.name for kind in KINDS]
    assert len(set(names)) == len(names), "kind names must be unique"
    assert len(names) >= 30, f"the corpus needs at least 30 kinds, has {len(names)}"


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.name)
def test_every_kind_ends_accounted_for_or_in_one_line(
    kind: Kind, base_lines: list[bytes], adult_settings: Settings, tmp_path: Path
) -> None:
    # given a file of this kind
    path = _write(kind, base_lines, tmp_path)
    dataset = _dataset(adult_settings, kind)
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
    path.write_bytes(_join(lines))
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
    path = _write(kind, base_lines, tmp_path)
    dataset = _dataset(adult_settings, kind)
    whole = read_table(path, dataset)
    pieces = read_table(path, dataset, block_bytes=997)
    # then the rows, the malformed lines and the checksum are the same as when read at once
    assert pieces.rows.equals(whole.rows), f"{kind.name}: rows differ when read in blocks"
    assert pieces.malformed.equals(whole.malformed), (
        f"{kind.name}: malformed lines differ when read in blocks"
    )
    assert pieces.sha256 == whole.sha256, f"{kind.name}: the checksum must not depend on the block size"


def _mixed_file(lines: list[bytes], folder: Path) -> Path:
    """300 rows with one ragged line, one NUL line, an impossible age and an unseen category, in 3 copies."""
    rows = [*lines, *lines, *lines]
    rows[4] += b", extra"
    rows = _with(rows, 150, "relationship", b"Hus\x00band")
    rows = _with(rows, 170, "age", b"300")
    rows = _with(rows, 290, "workclass", b"Wizard")
    path = folder / "mixed.csv"
    path.write_bytes(_join(rows))
    return path


@pytest.mark.parametrize("workers", [1, 2])
def test_chunked_validation_matches_whole_frame_validation(
    workers: int, base_lines: list[bytes], adult_settings: Settings, tmp_path: Path
) -> None:
    # given a 300-row file with four bad rows
    path = _mixed_file(base_lines, tmp_path)
    whole = validate_table(
        read_table(path, adult_settings.dataset), adult_settings.dataset, adult_settings.contract
    )
    # when validated in chunks of about 10 kB (3 chunks), in one process or two
    result = validate_file(
        path,
        adult_settings.dataset,
        adult_settings.contract,
        tmp_path / "quarantine.parquet",
        chunk_bytes=10_000,
        workers=workers,
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
    rows = _each_field(base_lines[:25], "occupation", b"?") + base_lines[25:] + base_lines + base_lines
    path = tmp_path / "mostly.csv"
    path.write_bytes(_join(rows))
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
        (lambda rows: _with(rows, 250, "income", b"maybe"), r"income: .*in_set failed.*first at line 251"),
        (lambda rows: _each_field(rows, "education", b"?"), r"'education' is entirely null"),
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
    path.write_bytes(_join(change([*base_lines, *base_lines, *base_lines])))
    # when validated in chunks / then one line names the file and the problem
    with pytest.raises(ContractError, match=message) as caught:
        validate_file(
            path, adult_settings.dataset, adult_settings.contract, tmp_path / "q.parquet", chunk_bytes=10_000
        )
    assert str(path) in str(caught.value) and "\n" not in str(caught.value), "one line naming the file"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["wrong_delimiter", "unseen_label"])
def test_train_on_a_bad_file_is_one_line_and_exit_2(
    name: str, base_lines: list[bytes], tmp_path: Path
) -> None:
    # given a file that fails in load (wrong delimiter) or in the contract (unseen label)
    kind = next(kind for kind in KINDS if kind.name == name)
    path = _write(kind, base_lines, tmp_path)
    config = write_adult_config(tmp_path)
    # when guardflow train runs on it
    result = run_guardflow(
        "train", "--config", str(config), "--data", str(path), home=tmp_path / "home", timeout=600
    )
    # then one line on stderr names the file, the line and the problem; exit 2; no traceback
    assert result.returncode == 2, f"exit code must be 2, got {result.returncode}: {result.stderr[-2000:]}"
    lines = [line for line in result.stderr.splitlines() if line.startswith("guardflow: ")]
    assert len(lines) == 1 and str(path) in lines[0], f"one line naming the file, got {result.stderr[-2000:]}"
    assert kind.error is not None and re.search(kind.error[1], lines[0]), f"the problem is named: {lines[0]}"
    assert "Traceback" not in result.stderr + result.stdout, "no traceback for bad input"
