"""Planted personal data for the PII guard's tests, and a scanner that finds any of it again in written files.

Every planted value carries something a scan can find cheaply and that nothing else writes: emails use the
domain `pii-planted.example`, surnames and street names are invented words, and phone numbers, SSNs and dates of
birth are pulled out of a file by format and looked up in the planted set.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

EMAIL_DOMAIN = "pii-planted.example"
FIRST_NAMES = (
    "Anna", "Bruno", "Clara", "Dmitri", "Elena", "Farid", "Greta", "Hugo", "Ingrid", "Jonas", "Keiko", "Luca",
    "Mira", "Nils", "Olga", "Pablo", "Quinn", "Rosa", "Stefan", "Tara", "Umar", "Vera", "Wim", "Xenia", "Yusuf",
)  # fmt: skip
SURNAMES = (
    "Quillfeather", "Brackenwold", "Thistlewaite", "Marchbourne", "Vantzelbrook", "Oakensprout", "Frostmantle",
    "Grindlewick", "Holloway-Pratchet", "Ivorstaff", "Jessamundo", "Kettleburrow", "Larkspurne", "Moorcombe",
    "Nettlebright", "Orrinshaw", "Pembervane", "Quorridge", "Rookenfield", "Salthollow", "Tumblethorn",
    "Umbervale", "Wrenfallow", "Yarrowdeep", "Zephyrquill",
)  # fmt: skip
STREETS = ("Quorvale", "Brindlemoor", "Cattlewhist", "Dunsparrow", "Elderquay", "Fennimarsh", "Gorsebrook")
STREET_TYPES = ("Street", "Avenue", "Road", "Lane", "Drive", "Court", "St", "Ave")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Pulled out of a file's text by format, then looked up among the planted values.
_SHAPES = re.compile(
    r"\(\d{3}\) \d{3}-\d{4}|\+1 \d{3} \d{3} \d{4}|\+44 \d{2} \d{4} \d{4}|\d{3}[-.]\d{3}[-.]\d{4}"  # phones
    r"|\d{3}-\d{2}-\d{4}"  # SSNs
    r"|\d{4}-\d{2}-\d{2}|\d{2}/\d{2}/\d{4}|\d{1,2} [A-Z][a-z]{2} \d{4}"  # dates of birth
)
PII_COLUMNS = ("full_name", "email", "phone", "ssn", "address", "date_of_birth", "contact", "notes")
# Personal data the guard cannot recognise (invented nicknames, case numbers): the config does not declare these
# columns, so data minimisation must drop them although no policy names them.
UNDECLARED_COLUMNS = ("alias", "case_ref")
NICKNAMES = ("Wobblequist", "Snorvendale", "Plimbertoft", "Gravelnook", "Dappleworth", "Fizzlemarsh")
CASE_PREFIX = "CSRF7Q"


@dataclass(frozen=True)
class Leak:
    path: Path
    what: str


@dataclass
class PlantedValues:
    """Every planted value (by column), and the markers that find names, emails and addresses in bulk."""

    by_column: dict[str, set[str]] = field(default_factory=dict)

    def add(self, frame: pd.DataFrame) -> None:
        for column in PII_COLUMNS:
            self.by_column.setdefault(column, set()).update(frame[column].dropna().astype(str))

    @property
    def shaped(self) -> set[str]:
        """Phones, SSNs, dates of birth and the phone numbers inside notes."""
        values = self.by_column["phone"] | self.by_column["ssn"] | self.by_column["date_of_birth"]
        values |= self.by_column["contact"]
        for note in self.by_column["notes"]:
            values.update(_SHAPES.findall(note))
        return values

    def leaks_in(self, path: Path) -> list[Leak]:
        """Planted values found in the file (parquet and gzip are read decompressed)."""
        text = _readable_text(path)
        markers = (EMAIL_DOMAIN, *SURNAMES, *STREETS, *NICKNAMES, CASE_PREFIX)
        leaks = [Leak(path, marker) for marker in markers if marker in text]
        shaped = self.shaped
        leaks += [Leak(path, value) for value in set(_SHAPES.findall(text)) if value in shaped]
        return leaks


def planted_pii(rows: int, seed: int) -> pd.DataFrame:
    """`rows` rows of invented personal data: names, emails, phones, SSNs, addresses, dates of birth, a
    `contact` column of phone numbers (nothing in its name says so) and free-text `notes` quoting some of them."""
    rng = np.random.default_rng(seed)
    first = rng.choice(FIRST_NAMES, rows)
    last = rng.choice(SURNAMES, rows)
    initials = rng.integers(ord("A"), ord("Z") + 1, rows)
    names = [
        f"{f} {chr(i)}. {s}" if n % 2 else f"{f} {s}"
        for n, (f, i, s) in enumerate(zip(first, initials, last, strict=True))
    ]
    emails = [
        f"{f.lower()}.{s.lower()}{n}@{EMAIL_DOMAIN}" for n, (f, s) in enumerate(zip(first, last, strict=True))
    ]
    phones = [_phone(rng, n) for n in range(rows)]
    contacts = [_phone(rng, n + 1) for n in range(rows)]
    ssns = [f"{a:03d}-{b:02d}-{c:04d}" for a, b, c in zip(
        rng.integers(100, 900, rows), rng.integers(10, 100, rows), rng.integers(1000, 10000, rows), strict=True
    )]  # fmt: skip
    addresses = [
        f"{number} {rng.choice(STREETS)} {rng.choice(STREET_TYPES)}" + (", Springfield" if number % 3 else "")
        for number in rng.integers(1, 9999, rows)
    ]
    births = [_birth_date(rng, n) for n in range(rows)]
    notes = [
        f"Called back on {phone} about the claim" if n % 8 == 0
        else f"Prefers email: {email} for letters" if n % 8 == 4
        else "No issues reported during the visit"
        for n, (phone, email) in enumerate(zip(phones, emails, strict=True))
    ]  # fmt: skip
    return pd.DataFrame(
        {
            "full_name": names,
            "email": emails,
            "phone": phones,
            "ssn": ssns,
            "address": addresses,
            "date_of_birth": births,
            "contact": contacts,
            "notes": notes,
        }
    )


def planted_undeclared(rows: int, seed: int) -> pd.DataFrame:
    """Columns the config will not declare: an alias and a case number per row, nothing a detector knows."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "alias": rng.choice(NICKNAMES, rows),
            "case_ref": [f"{CASE_PREFIX}{number:07d}" for number in rng.integers(0, 10**7, rows)],
        }
    )


def malformed_lines(frame: pd.DataFrame, count: int) -> list[str]:
    """Lines that cannot be parsed (one field too many) and quote planted values of every kind."""
    lines = []
    for n in range(count):
        row = frame.iloc[n % len(frame)].astype(str).tolist()
        lines.append(", ".join([*row, f"{NICKNAMES[n % len(NICKNAMES)]} {CASE_PREFIX}{n:07d}"]))
    return lines


def _phone(rng: np.random.Generator, n: int) -> str:
    area, middle, last = rng.integers(200, 999), rng.integers(200, 999), rng.integers(1000, 9999)
    forms = (
        f"({area}) {middle}-{last}",
        f"{area}-{middle}-{last}",
        f"+1 {area} {middle} {last}",
        f"{area}.{middle}.{last}",
        f"+44 {area % 90 + 10} {last} {rng.integers(1000, 9999)}",
    )
    return forms[n % len(forms)]


def _birth_date(rng: np.random.Generator, n: int) -> str:
    # Never the 1st: "1970-01-01" (the Unix epoch) is written by other software, not leaked by us; never in 2000:
    # Plotly, inside every Evidently report, carries calendar constants "2000-01-02" to "2000-01-05".
    year, month, day = rng.integers(1940, 2000), rng.integers(1, 13), rng.integers(2, 29)
    forms = (
        f"{year}-{month:02d}-{day:02d}",
        f"{month:02d}/{day:02d}/{year}",
        f"{day} {MONTHS[month - 1]} {year}",
    )
    return forms[n % len(forms)]


def _readable_text(path: Path) -> str:
    raw = path.read_bytes()
    parts = [raw.decode("latin-1")]
    if path.suffix == ".parquet":
        parts.append(pd.read_parquet(path).to_csv())
    if path.suffix == ".gz":
        parts.append(gzip.decompress(raw).decode("latin-1"))
    return "\n".join(parts)


def people_dataset(rows: int, seed: int) -> pd.DataFrame:
    """A new user's file about people: an id, a full name, lower-case first and last names, a date of birth, a
    case number and an email before the features (age, hours, sector, region, group) and the label `outcome`."""
    from faker import Faker

    rng = np.random.default_rng(seed)
    fake = Faker("en_US")
    fake.seed_instance(seed)
    first = [fake.first_name() for _ in range(rows)]
    last = rng.choice(SURNAMES, rows)
    age = rng.integers(18, 80, rows)
    hours = rng.integers(5, 70, rows)
    sector = rng.choice(["retail", "health", "public", "industry", "services"], rows)
    pairs = list(enumerate(zip(first, last, strict=True)))
    score = 0.09 * (age - 45) + 0.08 * (hours - 38) + (sector == "health") * 1.0 + rng.normal(0, 0.7, rows)
    return pd.DataFrame(
        {
            "id": np.arange(rows) + 100_000 * (seed + 1),
            "name": [f"{f} {s}" for f, s in zip(first, last, strict=True)],
            "first": [f.lower() for f in first],
            "last": [s.lower() for s in last],
            "dob": [_birth_date(rng, n) for n in range(rows)],
            "case_number": [f"{CASE_PREFIX}{n:07d}" for n in rng.integers(0, 10**7, rows)],
            "email": [f"{name.lower()}.{surname.lower()}{n}@{EMAIL_DOMAIN}" for n, (name, surname) in pairs],
            "age": age.astype(str),
            "hours": hours.astype(str),
            "sector": sector,
            "region": rng.choice(["north", "south", "east", "west"], rows),
            "group": rng.choice(["a", "b"], rows),
            "outcome": np.where(score > 0.8, "yes", "no"),
        }
    )
