"""The table as guardflow passes it around: rows kept as the text they were read as, indexed by `source_row`,
and the pure helpers that type them (numbers as floats, labels resolved) for the stages.

`source_row` is the 0-based line number in the (decompressed) file where the row starts: every physical line
counts, including a header, `skip_rows` lines and blank lines, so `source_row` N is line N+1 in an editor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from guardflow.settings import DatasetSettings

SOURCE_ROW = "source_row"
LINE = "line"  # the text of a line that could not be parsed into the columns
REASONS = "reasons"
_NUMBER = r"^[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)(e[+-]?[0-9]+)?|inf|infinity|nan)$"


def empty_malformed() -> pd.DataFrame:
    """The frame of unparsable lines when there are none: index `source_row`, columns `line` and `reasons`."""
    return pd.DataFrame(
        {LINE: pd.Series(dtype="str"), REASONS: pd.Series(dtype="object")},
        index=pd.Index([], dtype="int64", name=SOURCE_ROW),
    )


@dataclass(frozen=True)
class Table:
    """A data file as read: parsed rows as text and unparsable lines, both indexed by `source_row`; its sha256."""

    path: Path
    sha256: str
    rows: pd.DataFrame
    malformed: pd.DataFrame = field(default_factory=empty_malformed)

    @property
    def row_count(self) -> int:
        """Every data row of the file: the parsed ones and the malformed ones."""
        return len(self.rows) + len(self.malformed)


def column_problems(present: list[str], expected: list[str]) -> list[str]:
    """Missing and unexpected columns, named; a renamed column shows up as one of each."""
    missing = [column for column in expected if column not in present]
    unexpected = [column for column in present if column not in expected]
    problems = []
    if missing:
        problems.append(f"missing columns {missing}")
    if unexpected:
        problems.append(f"unexpected columns {unexpected}")
    return problems


def typed_frame(rows: pd.DataFrame, dataset: DatasetSettings) -> pd.DataFrame:
    """Numeric features as floats (unparsable text becomes missing), labels with aliases resolved."""
    typed = rows.copy()
    for name, feature in dataset.features.items():
        if feature.type == "numeric" and name in typed:
            typed[name] = to_float(typed[name])
    label = dataset.label.column
    if label in typed and dataset.label.aliases:
        typed[label] = typed[label].replace(dataset.label.aliases)
    return typed


def to_float(values: pd.Series) -> pd.Series:
    """Text to float64; text that is not a number (after trimming spaces) becomes NaN.

    Arrow parses the numbers (about 30x faster than `pd.to_numeric`); a regular expression first sets aside
    what it would refuse, so one bad value does not fail the column. Non-text columns go to `pd.to_numeric`.
    """
    if pd.api.types.is_string_dtype(values.dtype):
        import pyarrow as pa
        import pyarrow.compute as pc

        try:
            text = pc.utf8_trim_whitespace(pa.array(values, from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # an object column holding more than text
            pass
        else:
            numbers = pc.if_else(pc.match_substring_regex(text, _NUMBER, ignore_case=True), text, None)
            parsed = pc.cast(numbers, pa.float64()).to_numpy(zero_copy_only=False)
            return pd.Series(parsed, index=values.index, name=values.name, dtype="float64")
    return pd.to_numeric(values, errors="coerce").astype("float64")


def label_vector(frame: pd.DataFrame, dataset: DatasetSettings) -> pd.Series:
    """1 for the positive class, 0 for the negative one (rows with other labels must be filtered before)."""
    return (frame[dataset.label.column] == dataset.label.positive).astype("int64")


def labelled_rows(rows: pd.DataFrame, dataset: DatasetSettings) -> pd.DataFrame:
    """Typed rows whose label is one of the two classes: the held-out rows a model is judged on."""
    typed = typed_frame(rows, dataset)
    return typed[typed[dataset.label.column].isin([dataset.label.positive, dataset.label.negative])]
