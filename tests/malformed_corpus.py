"""Malformed input loses nothing: a corpus of bad files, each ending in a known way (the tests that read them
are tests/unit/io/test_datasets.py, tests/unit/io/test_validate_file.py and tests/unit/test_cli.py).

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from guardflow.errors import ContractError, DataError, GuardflowError
from guardflow.settings import DatasetSettings, Settings

ROWS = 100
COLUMNS_LINE = (
    b"age,workclass,fnlwgt,education,education-num,marital-status,occupation,relationship,race,sex,"
    b"capital-gain,capital-loss,hours-per-week,native-country,income"
)
FIELD = {name: index for index, name in enumerate(COLUMNS_LINE.decode().split(","))}


def adult_lines(adult_settings: Settings) -> list[bytes]:
    """The first 100 lines of adult.data, as written there (", " between fields): what every kind is built from."""
    content = gzip.decompress(adult_settings.dataset.train.path.read_bytes())
    return content.split(b"\n")[:ROWS]


def join_lines(lines: list[bytes], end: bytes = b"\n") -> bytes:
    return end.join(lines) + end


def with_field(lines: list[bytes], row: int, column: str, value: bytes) -> list[bytes]:
    """The lines with one field of one row replaced."""
    changed = list(lines)
    fields = changed[row].split(b", ")
    fields[FIELD[column]] = value
    changed[row] = b", ".join(fields)
    return changed


def each_field(lines: list[bytes], column: str, value: bytes) -> list[bytes]:
    changed = lines
    for row in range(len(lines)):
        changed = with_field(changed, row, column, value)
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
    whole = gzip.compress(join_lines(lines), mtime=0)
    return whole[: len(whole) // 2]


def _latin1_every_fourth(lines: list[bytes]) -> bytes:
    changed = lines
    for row in range(0, len(lines), 4):
        changed = with_field(changed, row, "native-country", b"M\xe9xico")
    return join_lines(changed)


def _blank_lines(lines: list[bytes]) -> bytes:
    return join_lines([b"", *lines[:50], b"", b"   ", *lines[50:], b""])


def _duplicate_header(lines: list[bytes]) -> bytes:
    return join_lines([COLUMNS_LINE.replace(b"race", b"sex"), *[line.replace(b", ", b",") for line in lines]])


def _header(lines: list[bytes], header: bytes = COLUMNS_LINE) -> bytes:
    return join_lines([header, *lines])


def _drop_field(line: bytes, column: str) -> bytes:
    fields = line.split(b", ")
    del fields[FIELD[column]]
    return b", ".join(fields)


KINDS = [
    Kind("clean", lambda lines: join_lines(lines)),
    Kind(
        "ragged_long",
        lambda lines: join_lines([*lines[:4], lines[4] + b", extra", *lines[5:]]),
        quarantined={4: "malformed: 16 fields, expected 15"},
    ),
    Kind(
        "ragged_short",
        lambda lines: join_lines([*lines[:7], b", ".join(lines[7].split(b", ")[:10]), *lines[8:]]),
        quarantined={7: "malformed: 10 fields, expected 15"},
    ),
    Kind(
        "single_field_line",
        lambda lines: join_lines([b"|1x3 Cross validator", *lines]),
        rows_in=ROWS + 1,
        quarantined={0: "malformed: 1 field, expected 15"},
    ),
    Kind(
        "embedded_newline_in_quotes",
        lambda lines: join_lines(with_field(lines, 2, "workclass", b'"State-\ngov"')),
        quarantined={2: "workclass: expect_column_values_to_be_in_set"},
    ),
    Kind(
        "quoted_fields_valid",
        lambda lines: join_lines(
            [b",".join(b'"' + part + b'"' for part in line.split(b", ")) for line in lines]
        ),
    ),
    Kind(
        "escaped_quotes",
        lambda lines: join_lines(with_field(lines, 5, "occupation", b'"Exec ""managerial"""')),
        quarantined={5: "occupation: expect_column_values_to_be_in_set"},
    ),
    Kind(
        "quotes_inside_a_field",
        lambda lines: join_lines(with_field(lines, 6, "workclass", b'Sta"te-g"ov')),
        quarantined={6: "workclass: expect_column_values_to_be_in_set"},
    ),
    Kind(
        "carriage_return_inside_a_line",
        lambda lines: join_lines(with_field(lines, 8, "workclass", b"State\r-gov")),
        quarantined={8: "malformed: a carriage return inside a line"},
    ),
    Kind(
        "quote_never_closed",
        lambda lines: join_lines(with_field(lines, ROWS - 1, "workclass", b'"Private')),
        quarantined={ROWS - 1: "a quote opened on this line never closes"},
    ),
    Kind("crlf_line_endings", lambda lines: join_lines(lines, b"\r\n")),
    Kind("utf8_bom", lambda lines: b"\xef\xbb\xbf" + join_lines(lines)),
    Kind(
        "nul_byte",
        lambda lines: join_lines(with_field(lines, 9, "relationship", b"Hus\x00band")),
        quarantined={9: "malformed: NUL byte"},
    ),
    Kind(
        "non_utf8_byte",
        lambda lines: join_lines(with_field(lines, 11, "native-country", b"M\xe9xico")),
        quarantined={11: "malformed: not UTF-8 (byte 0xe9"},
    ),
    Kind(
        "utf8_unseen_category",
        lambda lines: join_lines(with_field(lines, 11, "native-country", "México".encode())),
        quarantined={11: "native-country: expect_column_values_to_be_in_set"},
    ),
    Kind(
        "na_text_in_numeric",
        lambda lines: join_lines(with_field(lines, 19, "age", b"N/A")),
        quarantined={19: "age: expect_column_values_to_not_be_null"},
    ),
    Kind(
        "text_in_numeric",
        lambda lines: join_lines(with_field(lines, 20, "hours-per-week", b"forty")),
        quarantined={20: "hours-per-week: expect_column_values_to_not_be_null"},
    ),
    Kind(
        "plus_inf",
        lambda lines: join_lines(with_field(lines, 21, "capital-gain", b"inf")),
        quarantined={21: "capital-gain: expect_column_values_to_be_between"},
    ),
    Kind(
        "minus_inf",
        lambda lines: join_lines(with_field(lines, 22, "capital-loss", b"-inf")),
        quarantined={22: "capital-loss: expect_column_values_to_be_between"},
    ),
    Kind(
        "huge_numbers",
        lambda lines: join_lines(with_field(with_field(lines, 23, "fnlwgt", b"1e400"), 24, "age", b"9" * 23)),
        quarantined={
            23: "fnlwgt: expect_column_values_to_be_between",
            24: "age: expect_column_values_to_be_between",
        },
    ),
    Kind(
        "nan_text",
        lambda lines: join_lines(with_field(lines, 25, "age", b"nan")),
        quarantined={25: "age: expect_column_values_to_not_be_null"},
    ),
    Kind(
        "unseen_category",
        lambda lines: join_lines(with_field(lines, 26, "workclass", b"Wizard")),
        quarantined={26: "workclass: expect_column_values_to_be_in_set"},
    ),
    Kind(
        "missing_marker_in_required_column",
        lambda lines: join_lines(with_field(lines, 27, "sex", b"?")),
        quarantined={27: "sex: expect_column_values_to_not_be_null"},
    ),
    Kind(
        "trailing_space_in_category",
        lambda lines: join_lines(with_field(lines, 28, "sex", b"Male ")),
        quarantined={28: "sex: expect_column_values_to_be_in_set"},
    ),
    Kind(
        "header_line_in_headerless_file",
        lambda lines: join_lines([*lines[:30], COLUMNS_LINE, *lines[30:]]),
        rows_in=ROWS + 1,
        quarantined={30: "malformed: a repeated header line"},
    ),
    Kind(
        "duplicated_rows", lambda lines: join_lines([*lines, lines[0], lines[0], lines[0]]), rows_in=ROWS + 3
    ),
    Kind("blank_and_whitespace_lines", _blank_lines),
    Kind("no_final_newline", lambda lines: join_lines(lines)[:-1]),
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
        lambda lines: join_lines(lines),
        suffix=".gz",
        error=(DataError, r"line 1: cannot read"),
    ),
    Kind(
        "wrong_delimiter",
        lambda lines: join_lines([line.replace(b", ", b";") for line in lines]),
        error=(DataError, r"line 1: malformed: 1 field, expected 15; no line of the file parses"),
    ),
    Kind(
        "tab_separated",
        lambda lines: join_lines([line.replace(b", ", b"\t") for line in lines]),
        error=(DataError, r"line 1: malformed: 1 field, expected 15"),
    ),
    Kind(
        "single_column_file",
        lambda lines: join_lines([line.split(b", ")[0] for line in lines]),
        error=(DataError, r"line 1: malformed: 1 field, expected 15"),
    ),
    Kind(
        "extra_column_everywhere",
        lambda lines: join_lines([line + b", 1" for line in lines]),
        error=(DataError, r"line 1: malformed: 16 fields, expected 15"),
    ),
    Kind(
        "missing_column_everywhere",
        lambda lines: join_lines([_drop_field(line, "sex") for line in lines]),
        error=(DataError, r"line 1: malformed: 14 fields, expected 15; .*column 'sex' looks missing"),
    ),
    Kind(
        "cr_only_line_endings",
        lambda lines: b"\r".join(lines) + b"\r",
        error=(DataError, r"line 1: malformed: \d+ fields, expected 15"),
    ),
    Kind(
        "utf16_file",
        lambda lines: join_lines(lines).decode().encode("utf-16"),
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
        lambda lines: join_lines(with_field(lines, 40, "income", b"maybe")),
        error=(
            ContractError,
            r"income: expect_column_values_to_be_in_set failed: 1 of 100 .*first at line 41",
        ),
    ),
    Kind(
        "all_nan_column",
        lambda lines: join_lines(each_field(lines, "education", b"?")),
        error=(ContractError, r"'education' is entirely null"),
    ),
    Kind(
        "numeric_column_all_text",
        lambda lines: join_lines(each_field(lines, "age", b"old")),
        error=(ContractError, r"'age' has no value that parses as a number"),
    ),
    Kind(
        "mostly_column_too_often_missing",
        lambda lines: join_lines(each_field(lines[:30], "occupation", b"?") + lines[30:]),
        error=(ContractError, r"occupation: expect_column_values_to_not_be_null failed: 3\d of 100 .*85%"),
    ),
    Kind(
        "malformed_share_over_limit",
        _latin1_every_fourth,
        error=(ContractError, r"25 of 100 rows quarantined .*not UTF-8.*first at line 1"),
    ),
]


def kind_dataset(settings: Settings, kind: Kind) -> DatasetSettings:
    return settings.dataset.model_copy(update={"header": kind.header})


def write_kind(kind: Kind, lines: list[bytes], folder: Path) -> Path:
    path = folder / f"{kind.name}{kind.suffix}"
    path.write_bytes(kind.build(lines))
    return path
