"""Person-name columns in any shape: by column name and by value (public Census lists), in any case; none found in
the bundled datasets."""

from __future__ import annotations

import pandas as pd
import pytest
from faker import Faker

from guardflow.io.datasets import read_split
from guardflow.pii.guard_pii import PERSON_NAME, detect_pii, kinds_by_name
from guardflow.pii.person_names import is_name_like, known_names
from guardflow.settings import PiiSettings, load_settings
from tests.conftest import ROOT


@pytest.mark.parametrize(
    "column",
    [
        "first",
        "LAST",
        "given",
        "Surname",
        "family_name",
        "fname",
        "LNAME",
        "firstName",
        "name_first",
        "Vorname",
    ],
)
def test_a_column_named_for_a_part_of_a_name_is_a_person_name(column: str) -> None:
    # given a column name that says it holds (part of) a person's name / then the guard reads it so
    assert PERSON_NAME in kinds_by_name(column), f"'{column}' names a person's name"


@pytest.mark.parametrize(
    "column", ["filename", "hostname", "last_login", "first_seen", "company_name", "given_date", "race"]
)
def test_a_column_name_that_only_contains_first_or_last_is_not(column: str) -> None:
    assert PERSON_NAME not in kinds_by_name(column), f"'{column}' is not a person's name"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("anna", True),
        ("SMITH", True),
        ("smith, john a.", True),
        ("Maria Quillfeather", True),  # an unknown surname beside a known first name
        ("Lake Jennifer", False),  # a place named after a person
        ("Smith, Jones and Brown", False),  # a firm
        ("Quillfeather", False),  # one unknown word
        ("12 Main", False),
    ],
)
def test_a_value_is_name_like_in_any_case(value: str, expected: bool) -> None:
    assert is_name_like(value) is expected, f"is_name_like({value!r}) should be {expected}"


@pytest.mark.parametrize("case", [str.lower, str.upper, str.title])
def test_first_name_and_surname_columns_are_found_by_value_whatever_their_case(case) -> None:
    # given first names and surnames drawn by Faker (en_US), in one case, under names that say nothing
    fake = Faker("en_US")
    fake.seed_instance(7)
    rows = pd.DataFrame(
        {
            "c1": [case(fake.first_name()) for _ in range(200)],
            "c2": [case(fake.last_name()) for _ in range(200)],
            "c3": [case(fake.city()) for _ in range(200)],
        }
    )
    # when the guard judges them
    found = {finding.column: finding.kinds for finding in detect_pii(rows, PiiSettings())}
    # then both name columns are person names and the cities are not
    assert PERSON_NAME in found.get("c1", ()) and PERSON_NAME in found.get("c2", ()), f"found {found}"
    assert "c3" not in found, f"cities are not people: {found}"


def test_few_distinct_words_that_happen_to_be_surnames_are_not_a_name_column() -> None:
    # given a category column whose few values are also surnames (White, Black, Young)
    rows = pd.DataFrame({"group": ["White", "Black", "Young", "Brown", "Husband"] * 100})
    # then it is not taken for names
    assert "White" in {name.title() for name in known_names() if name == "WHITE"}, "White is a Census surname"
    assert detect_pii(rows, PiiSettings()) == (), "a handful of repeated words is a category, not people"


@pytest.mark.parametrize("config", ["configs/adult.yaml", "configs/fair.yaml"])
def test_no_column_of_the_bundled_datasets_is_found(config: str) -> None:
    settings = load_settings(ROOT / config)
    for split in ("train", "test"):
        findings = detect_pii(read_split(settings.dataset, split).rows, settings.pii)
        assert findings == (), f"{config} {split}: {[finding.describe() for finding in findings]}"
