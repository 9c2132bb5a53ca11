"""The PII guard: each kind of personal data is found (by name and by values), Adult and ordinary columns are not,
findings never carry a value, and the policy drops, hashes with a secret key, blocks or stops the run."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from guardflow.errors import ConfigError, PiiError
from guardflow.io.datasets import read_split
from guardflow.pii.guard_pii import (
    BIRTH_DATE,
    EMAIL,
    NATIONAL_ID,
    PERSON_NAME,
    PHONE,
    REDACTED,
    STREET_ADDRESS,
    contract_dataset,
    detect_pii,
    guard_pii,
    hash_values,
    kinds_by_name,
)
from guardflow.settings import PiiSettings
from tests.pii_data import EMAIL_DOMAIN, PlantedValues, planted_pii

ROWS = 1200
KEY = b"k" * 32


@pytest.fixture(scope="module")
def planted() -> pd.DataFrame:
    return planted_pii(ROWS, seed=7)


def _found(rows: pd.DataFrame, pii: PiiSettings | None = None) -> dict[str, tuple[str, ...]]:
    return {finding.column: finding.kinds for finding in detect_pii(rows, pii or PiiSettings())}


@pytest.mark.parametrize(
    ("column", "kind"),
    [
        ("full_name", PERSON_NAME),
        ("email", EMAIL),
        ("phone", PHONE),
        ("ssn", NATIONAL_ID),
        ("address", STREET_ADDRESS),
        ("date_of_birth", BIRTH_DATE),
        ("contact", PHONE),
    ],
)
def test_each_kind_is_found_from_values_alone(planted: pd.DataFrame, column: str, kind: str) -> None:
    # given a column of planted personal data under a name that says nothing
    rows = pd.DataFrame({"c1": planted[column]})
    # when the guard looks at it
    (finding,) = detect_pii(rows, PiiSettings())
    # then its values alone give it away, with the share of sampled values matching
    assert finding.by_name == (), "the name 'c1' suggests nothing"
    assert kind in finding.shares, f"{column} values must read as {kind}, got {finding.shares}"
    assert finding.shares[kind] >= 0.9, f"nearly every planted {column} value matches: {finding.shares}"


def test_free_text_quoting_emails_and_phones_is_found(planted: pd.DataFrame) -> None:
    # given notes where one row in eight quotes a phone number and one in eight an email
    rows = pd.DataFrame({"remarks": planted["notes"]})
    # when the guard looks at them
    (finding,) = detect_pii(rows, PiiSettings())
    # then the column is free text holding emails and phones, at about the planted shares
    assert set(finding.text_shares) == {EMAIL, PHONE}, f"emails and phones in text, got {finding.text_shares}"
    assert finding.text_shares[EMAIL] == pytest.approx(1 / 8, abs=0.02), finding.text_shares
    assert "email in free text" in finding.kinds and "phone in free text" in finding.kinds, finding.kinds


@pytest.mark.parametrize(
    ("name", "kinds"),
    [
        ("name", (PERSON_NAME,)),
        ("FirstName", (PERSON_NAME,)),
        ("customer_name", (PERSON_NAME,)),
        ("e-mail", (EMAIL,)),
        ("EmailAddress", (EMAIL,)),
        ("Phone Number", (PHONE,)),
        ("ssn", (NATIONAL_ID,)),
        ("national_id", (NATIONAL_ID,)),
        ("street", (STREET_ADDRESS,)),
        ("home_address", (STREET_ADDRESS,)),
        ("dob", (BIRTH_DATE,)),
        ("DateOfBirth", (BIRTH_DATE,)),
        ("product_name", ()),
        ("filename", ()),
        ("ip_address", ()),
        ("notes", ()),
        ("native-country", ()),
        ("hours-per-week", ()),
    ],
)
def test_column_names_are_read_word_by_word(name: str, kinds: tuple[str, ...]) -> None:
    assert kinds_by_name(name) == kinds, f"{name!r} must suggest {kinds}, got {kinds_by_name(name)}"


def test_a_suggestive_name_is_enough_even_with_harmless_values() -> None:
    rows = pd.DataFrame({"email": ["yes", "no"] * 50})
    assert _found(rows) == {"email": (EMAIL,)}, "a column named email is personal data whatever it holds"


def test_none_of_adults_columns_is_detected(adult_settings) -> None:
    # given both Adult files, all 15 columns
    for split in ("train", "test"):
        rows = read_split(adult_settings.dataset, split).rows
        # when the guard runs with the bundled policy (none)
        result = guard_pii(rows, adult_settings.pii)
        # then nothing is found, nothing redacted, and the rows come out unchanged
        assert result.findings == (), f"adult.{split}: no column is personal data, got {result.findings}"
        assert result.redacted == {}, f"adult.{split}: no stray value, got {result.redacted}"
        pd.testing.assert_frame_equal(result.rows, rows, obj=f"adult.{split} after the guard")


def test_ordinary_numeric_and_categorical_columns_are_not_detected() -> None:
    # given columns that look like many real features: numbers, codes, places, products and event dates
    n = 600
    rows = pd.DataFrame(
        {
            "amount": [f"{1000 + 17 * i}.{i % 100:02d}" for i in range(n)],
            "count": [str(i % 37) for i in range(n)],
            "ratio": [f"{(i % 97) / 97:.4f}" for i in range(n)],
            "code": [f"A-{i % 50:03d}" for i in range(n)],
            "city": ["New York", "Los Angeles", "San Francisco", "Buenos Aires", "Hong Kong"] * (n // 5),
            "product": ["Blue Widget", "Red Gadget", "Green Sprocket"] * (n // 3),
            "order_date": [f"2023-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in range(n)],
            "version": [f"{i % 4}.{i % 10}.{i % 7}" for i in range(n)],
            "flag": ["yes", "no", "unknown"] * (n // 3),
        }
    )
    assert _found(rows) == {}, "no ordinary column may be taken for personal data"
    assert guard_pii(rows, PiiSettings()).redacted == {}, "and no ordinary value is a stray identifier"


def test_findings_never_carry_a_value(planted: pd.DataFrame) -> None:
    findings = detect_pii(planted, PiiSettings())
    assert {finding.column for finding in findings} == set(planted.columns), "every planted column is found"
    text = " ".join(f"{finding.describe()} {finding.all_shares}" for finding in findings)
    leaked = [value for column in planted for value in planted[column].head(50) if value in text]
    assert leaked == [], f"findings must describe columns, never quote values: {leaked[:3]}"


def test_detection_is_deterministic_and_samples_the_whole_column() -> None:
    # given a long column whose personal data sits only in its second half
    values = [str(i) for i in range(5000)] + [f"user{i}@mail.example" for i in range(5000)]
    rows = pd.DataFrame({"c": values})
    first, second = detect_pii(rows, PiiSettings()), detect_pii(rows, PiiSettings())
    # then the evenly spaced sample sees it, and two runs agree exactly
    assert first == second, "the same rows must give the same findings"
    assert first[0].shares == {EMAIL: 0.5}, f"half the sampled values are emails, got {first[0].shares}"


def test_policy_drops_hashes_and_leaves_the_rest(planted: pd.DataFrame) -> None:
    # given a policy for every planted column and two ordinary columns
    rows = planted.assign(age=[str(20 + i % 50) for i in range(ROWS)], income=">50K")
    policies = {column: "drop" for column in planted.columns} | {"email": "hash", "ssn": "hash"}
    # when the guard applies it
    result = guard_pii(rows, PiiSettings(columns=policies), key=lambda: KEY)
    # then dropped columns are gone, hashed ones hold keyed digests, and the rest is untouched
    assert list(result.rows.columns) == ["email", "ssn", "age", "income"], list(result.rows.columns)
    assert result.rows["email"].str.fullmatch(r"[0-9a-f]{64}").all(), "hashed values are hex HMAC-SHA256"
    assert not result.rows["email"].isin(planted["email"]).any(), "no raw email is left"
    pd.testing.assert_series_equal(result.rows["age"], rows["age"])
    assert set(result.dropped) == set(planted.columns) - {"email", "ssn"} and result.hashed == (
        "email",
        "ssn",
    )


def test_keyed_hash_is_stable_for_a_key_and_differs_across_keys() -> None:
    values = pd.Series(["ann@x.example", "bob@x.example", None, "ann@x.example"])
    once, again = hash_values(values, KEY), hash_values(values, KEY)
    other = hash_values(values, b"another key of 32 bytes........")
    assert once.tolist() == again.tolist(), "one key, one digest per value"
    assert once[0] == once[3] and once[0] != once[1], "equal values stay joinable, different ones differ"
    assert pd.isna(once[2]), "a missing value stays missing"
    assert not (once.dropna() == other.dropna()).any(), "another key gives other digests"
    with pytest.raises(ValueError, match="key"):
        hash_values(values, b"")


def test_detected_column_without_policy_stops_with_one_line_naming_it(planted: pd.DataFrame) -> None:
    # given every planted column covered except `contact` (phones, with a name that says nothing)
    rows = planted.assign(age="30")
    policies = {column: "drop" for column in planted.columns if column != "contact"}
    # when the guard runs, then it stops naming the column and the kind, and quotes no value
    with pytest.raises(PiiError) as caught:
        guard_pii(rows, PiiSettings(columns=policies))
    message = str(caught.value)
    assert "\n" not in message and "'contact'" in message and PHONE in message, message
    assert "drop, hash or block" in message, f"the message says how to fix it: {message}"
    assert not any(value in message for value in planted["contact"]), "no value in the message"


def test_blocked_column_stops_the_run(planted: pd.DataFrame) -> None:
    policies = {column: "drop" for column in planted.columns} | {"ssn": "block"}
    with pytest.raises(PiiError, match=r"blocked by pii policy: 'ssn': national_id"):
        guard_pii(planted, PiiSettings(columns=policies))


def test_policy_for_a_column_not_in_the_data_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"not in the data: \['email'\]"):
        guard_pii(pd.DataFrame({"age": ["30"]}), PiiSettings(columns={"email": "drop"}))


def test_stray_identifiers_in_other_columns_are_redacted() -> None:
    # given a categorical column where 2 cells in 100 hold an email or a phone number (below any column share)
    ordinary = ["Sales", "Tech-support", "Craft-repair"] * 33
    occupation = [*ordinary[:98], "ann@mail.example", "call (555) 123-4567"] * 3
    rows = pd.DataFrame({"occupation": occupation, "age": ["30"] * 300})
    # when the guard runs
    result = guard_pii(rows, PiiSettings())
    # then only those cells are replaced by the marker, and counted
    assert result.findings == (), f"too few to make the column personal data: {result.findings}"
    assert result.redacted == {"occupation": 6}, result.redacted
    assert (result.rows["occupation"] == REDACTED).sum() == 6, "each stray cell is redacted"
    assert result.rows["occupation"].isin(ordinary).sum() == 294, "every other cell is kept"


def test_contract_sees_the_columns_left_after_the_guard(adult_settings) -> None:
    # given a headerless dataset whose files carry two PII columns around Adult's
    dataset = adult_settings.dataset.model_copy(
        update={"columns": ["full_name", *adult_settings.dataset.columns, "email"]}
    )
    pii = PiiSettings(columns={"full_name": "drop", "email": "hash"})
    settings = adult_settings.model_copy(update={"dataset": dataset, "pii": pii})
    # then the contract expects Adult's columns and the hashed email, not the dropped name
    assert contract_dataset(settings).expected_columns == [*adult_settings.dataset.columns, "email"]
    assert contract_dataset(adult_settings) is adult_settings.dataset, "no policy, no change"
    # and a file with a header (no `columns`) is expected to carry the features, the label and the hashed email
    with_header = settings.model_copy(update={"dataset": dataset.model_copy(update={"columns": None})})
    features_and_label = [*adult_settings.dataset.features, adult_settings.dataset.label.column]
    assert contract_dataset(with_header).expected_columns == [*features_and_label, "email"]


def test_the_leak_scanner_reads_compressed_files(planted: pd.DataFrame, tmp_path: Path) -> None:
    # given planted values written as snappy parquet and as gzip CSV, and a file with none of them
    values = PlantedValues()
    values.add(planted)
    planted[["ssn", "email"]].to_parquet(tmp_path / "rows.parquet", compression="snappy")
    (tmp_path / "rows.csv.gz").write_bytes(gzip.compress(planted[["phone"]].to_csv().encode()))
    (tmp_path / "clean.json").write_text('{"status": "promoted", "epsilon": 0.99}')
    # when the scanner reads them / then it finds the planted values, and nothing in the clean file
    found = {leak.what for leak in values.leaks_in(tmp_path / "rows.parquet")}
    assert EMAIL_DOMAIN in found and found & values.by_column["ssn"], "parquet is read decompressed"
    found = {leak.what for leak in values.leaks_in(tmp_path / "rows.csv.gz")}
    assert found & values.by_column["phone"], "gzip is read decompressed"
    assert values.leaks_in(tmp_path / "clean.json") == [], "a file without planted values is clean"
