"""Person-name columns in any shape: a Faker corpus to measure the PII guard's name detection on.

Per locale and seed, 12 name columns (first name, surname, "First Last", "Last, First", each as written, lower
and upper case) and 12 other columns with words that are not people's names (cities, countries, companies, jobs,
colours, words, months, street names, some lower case), 300 rows each, under neutral column names (`c0`, `c1`...),
so only values decide. Column names are judged apart, on lists of names that do and do not mean a person's name.
Also: how much of Faker's own name lists the Census lists cover (the detector's recall bound per locale), and the
columns found in every bundled dataset.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from faker import Faker

from guardflow.io.datasets import read_split
from guardflow.pii.guard_pii import PERSON_NAME, detect_pii, kinds_by_name
from guardflow.pii.person_names import fold_word, known_names
from guardflow.settings import PiiSettings, load_settings

ROOT = Path(__file__).resolve().parents[1]
LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR")
ROWS = 300
BUNDLED = ("configs/adult.yaml", "configs/fair.yaml")

NAME_COLUMNS = (
    "first", "last", "First", "LAST", "given", "surname", "Surname", "family_name", "FamilyName", "fname", "lname",
    "FNAME", "first_name", "firstName", "last-name", "LastName", "given_name", "givenNames", "forename",
    "middle_name", "full_name", "name", "Name", "name_first", "name_last", "patient_name", "nachname", "Vorname",
    "prenom", "apellido", "nickname", "l_name",
)  # fmt: skip
OTHER_COLUMNS = (
    "filename", "file_name", "hostname", "host_name", "last_login", "first_seen", "lastModified", "first_visit",
    "company_name", "product_name", "street_name", "country_name", "city", "namespace", "rename_count",
    "given_date", "family_size", "last_updated", "name_server", "surgery", "firstly", "occupation", "race",
)  # fmt: skip


def _name_columns(fake: Faker) -> dict[str, Callable[[], str]]:
    def last_first() -> str:
        return f"{fake.last_name()}, {fake.first_name()}"

    def first_last() -> str:
        return f"{fake.first_name()} {fake.last_name()}"

    shapes: dict[str, Callable[[], str]] = {
        "first_name": fake.first_name,
        "surname": fake.last_name,
        "first_last": first_last,
        "last_first": last_first,
    }
    columns: dict[str, Callable[[], str]] = {}
    for shape, make in shapes.items():
        columns[f"{shape}/as_written"] = make
        columns[f"{shape}/lower"] = lambda make=make: make().lower()
        columns[f"{shape}/upper"] = lambda make=make: make().upper()
    return columns


def _other_columns(fake: Faker) -> dict[str, Callable[[], str]]:
    return {
        "city": fake.city,
        "city/lower": lambda: fake.city().lower(),
        "country": fake.country,
        "company": fake.company,
        "job": fake.job,
        "colour": fake.color_name,
        "word": fake.word,
        "word/upper": lambda: fake.word().upper(),
        "month": fake.month_name,
        "street_name": fake.street_name,
        "catch_phrase": fake.catch_phrase,
        "currency": fake.currency_name,
    }


def _column_found(values: list[str]) -> bool:
    frame = pd.DataFrame({"c0": values})
    return any(PERSON_NAME in finding.kinds for finding in detect_pii(frame, PiiSettings()))


def _faker_overlap(locale: str) -> dict[str, float]:
    """Share of Faker's own first names and surnames of a locale that are in the detector's Census lists."""
    fake = Faker(locale)
    (provider,) = [p for p in fake.providers if type(p).__module__.startswith("faker.providers.person.")]
    known = known_names()
    shares = {}
    for kind, names in (("first_names", provider.first_names), ("last_names", provider.last_names)):
        listed = list(names)
        shares[kind] = round(sum(fold_word(name) in known for name in listed) / len(listed), 3)
    return shares


def _by_value(seeds: list[int]) -> dict[str, Any]:
    found: dict[str, dict[str, int]] = {}  # column kind -> {"found": n, "of": n}
    per_locale: dict[str, dict[str, int]] = {}
    for locale in LOCALES:
        for seed in seeds:
            fake = Faker(locale)
            fake.seed_instance(seed)
            for positive, makers in ((True, _name_columns(fake)), (False, _other_columns(fake))):
                for kind, make in makers.items():
                    hit = _column_found([make() for _ in range(ROWS)])
                    tally = found.setdefault(
                        ("name: " if positive else "other: ") + kind, {"found": 0, "of": 0}
                    )
                    tally["found"] += hit
                    tally["of"] += 1
                    counts = per_locale.setdefault(locale, {"tp": 0, "fn": 0, "fp": 0, "tn": 0})
                    counts[("tp" if hit else "fn") if positive else ("fp" if hit else "tn")] += 1
    tp = sum(c["tp"] for c in per_locale.values())
    fn = sum(c["fn"] for c in per_locale.values())
    fp = sum(c["fp"] for c in per_locale.values())
    return {
        "rows_per_column": ROWS,
        "seeds": seeds,
        "locales": list(LOCALES),
        "precision": round(tp / (tp + fp), 4) if tp + fp else None,
        "recall": round(tp / (tp + fn), 4) if tp + fn else None,
        "counts": {"tp": tp, "fn": fn, "fp": fp, "tn": sum(c["tn"] for c in per_locale.values())},
        "recall_by_locale": {
            locale: round(c["tp"] / (c["tp"] + c["fn"]), 3) for locale, c in per_locale.items()
        },
        "false_positives_by_locale": {locale: c["fp"] for locale, c in per_locale.items()},
        "by_column_kind": found,
        "faker_names_in_census_lists": {locale: _faker_overlap(locale) for locale in LOCALES},
    }


def _by_name() -> dict[str, Any]:
    missed = [name for name in NAME_COLUMNS if PERSON_NAME not in kinds_by_name(name)]
    wrong = [name for name in OTHER_COLUMNS if PERSON_NAME in kinds_by_name(name)]
    tp = len(NAME_COLUMNS) - len(missed)
    return {
        "name_columns": len(NAME_COLUMNS),
        "other_columns": len(OTHER_COLUMNS),
        "precision": round(tp / (tp + len(wrong)), 4) if tp + len(wrong) else None,
        "recall": round(tp / len(NAME_COLUMNS), 4),
        "missed": missed,
        "false_positives": wrong,
    }


def _bundled() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for config in BUNDLED:
        settings = load_settings(ROOT / config)
        for split in ("train", "test"):
            rows = read_split(settings.dataset, split).rows
            findings = detect_pii(rows, settings.pii)
            found[f"{settings.dataset.id}/{split}"] = {
                "columns": len(rows.columns),
                "found": {finding.column: list(finding.kinds) for finding in findings},
            }
    return found


def measure_names(seeds: list[int]) -> dict[str, Any]:
    """Every name-detection figure, as saved under `names` in bench/results/guard_pii.json."""
    started = time.perf_counter()
    figures = {"by_value": _by_value(seeds), "by_column_name": _by_name(), "bundled_datasets": _bundled()}
    figures["bundled_false_positives"] = sum(
        len(item["found"]) for item in figures["bundled_datasets"].values()
    )
    figures["seconds"] = round(time.perf_counter() - started, 1)
    return figures
