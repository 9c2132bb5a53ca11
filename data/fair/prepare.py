"""Rebuild fair.data.gz and fair.test.gz from the copy of Fair's affairs data that statsmodels ships.

Run with the project's venv: `python data/fair/prepare.py`. Offline and deterministic: the source file is the
one inside the installed statsmodels package (checked by sha256), every value is kept as the text it was written
as, and the only derived column is the label `affair` ("yes" when `affairs` > 0, else "no"), which replaces the
`affairs` measure it is computed from. Rows whose 0-based position is a multiple of 3 form the test file, the others
the training file (the source is sorted by `affairs`, so a head/tail split would separate the classes).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from pathlib import Path

import statsmodels.datasets.fair

SOURCE = Path(statsmodels.datasets.fair.__file__).with_name("fair.csv")
SOURCE_SHA256 = "fd5f3f094a34fc35ca346a14c359e046ed27843038d6921efcd50a7ab21f6af0"
HERE = Path(__file__).resolve().parent


def main() -> None:
    content = SOURCE.read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    if digest != SOURCE_SHA256:
        raise SystemExit(f"{SOURCE} has sha256 {digest}, expected {SOURCE_SHA256}")
    header, *rows = list(csv.reader(io.StringIO(content.decode("utf-8"))))
    if header[-1] != "affairs":
        raise SystemExit(f"unexpected last column {header[-1]!r}")
    derived = [[*row[:-1], "yes" if float(row[-1]) > 0 else "no"] for row in rows]
    splits = {
        "fair.data.gz": [row for position, row in enumerate(derived) if position % 3 != 0],
        "fair.test.gz": [row for position, row in enumerate(derived) if position % 3 == 0],
    }
    for name, split in splits.items():
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows([[*header[:-1], "affair"], *split])
        data = text.getvalue().encode("utf-8")
        (HERE / name).write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
        print(f"{name}: {len(split)} rows, content sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
