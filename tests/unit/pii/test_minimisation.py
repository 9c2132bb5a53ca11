"""Data minimisation after the PII guard: only declared columns go on, malformed lines lose their text."""

from __future__ import annotations

import hashlib
import hmac

import pandas as pd

from guardflow.data.table import LINE, REASONS, SOURCE_ROW
from guardflow.pii.guard_pii import (
    LINE_HMAC,
    LINE_LENGTH,
    contract_dataset,
    declared_columns,
    keep_declared,
    mask_malformed,
)
from guardflow.settings import Settings

KEY = b"a-test-key-of-enough-length"


def _settings(adult_settings: Settings, columns: list[str], policies: dict[str, str]) -> Settings:
    dataset = adult_settings.dataset.model_copy(update={"columns": columns})
    pii = adult_settings.pii.model_copy(update={"columns": policies})
    return adult_settings.model_copy(update={"dataset": dataset, "pii": pii})


def test_undeclared_columns_are_dropped_and_named(adult_settings: Settings) -> None:
    # given a file layout with Adult's columns, a hashed id, a dropped name and an undeclared nickname
    layout = ["customer_id", *(adult_settings.dataset.columns or []), "nickname", "name"]
    settings = _settings(adult_settings, layout, {"customer_id": "hash", "name": "drop"})
    rows = pd.DataFrame({column: ["x"] for column in layout if column != "name"})
    # when the guarded rows are minimised
    kept, undeclared = keep_declared(rows, settings)
    # then only features, label and the hashed id are left, in file order, and the nickname is named
    assert undeclared == ("nickname",), f"the undeclared column is named: {undeclared}"
    assert list(kept.columns) == [c for c in layout if c in declared_columns(settings)], "file order is kept"
    assert "customer_id" in kept.columns and "nickname" not in kept.columns, f"kept {list(kept.columns)}"


def test_the_contract_checks_exactly_the_declared_columns(adult_settings: Settings) -> None:
    # given a layout with undeclared and dropped columns
    layout = ["customer_id", *(adult_settings.dataset.columns or []), "nickname", "name"]
    settings = _settings(adult_settings, layout, {"customer_id": "hash", "name": "drop"})
    # then the contract expects the declared ones, in the layout's order: no check on them is weakened
    expected = contract_dataset(settings).expected_columns
    assert expected == ["customer_id", *(adult_settings.dataset.columns or [])], (
        f"contract columns {expected}"
    )
    # and a config whose columns are all declared (Adult) is unchanged
    assert contract_dataset(adult_settings) is adult_settings.dataset, "Adult's contract view is its dataset"


def test_a_malformed_line_keeps_its_number_length_and_keyed_hash_not_its_text() -> None:
    # given two malformed lines that quote personal data
    lines = ["39, anna.smith@example.org, extra", "Ünïcode line"]
    index = pd.Index([7, 12], dtype="int64", name=SOURCE_ROW)
    malformed = pd.DataFrame({LINE: pd.Series(lines, index=index), REASONS: [["malformed"], ["malformed"]]})
    # when masked
    masked = mask_malformed(malformed, KEY)
    # then the text is gone, the line numbers and reasons stay, and length and HMAC identify each line
    assert LINE not in masked.columns and list(masked.index) == [7, 12], f"masked: {masked}"
    assert list(masked[LINE_LENGTH]) == [len(line) for line in lines], "lengths in characters"
    expected = [hmac.new(KEY, line.encode(), hashlib.sha256).hexdigest() for line in lines]
    assert list(masked[LINE_HMAC]) == expected, "HMAC-SHA256 of the line's text under the PII key"
    assert "anna" not in masked.to_csv(), "no part of the text is left"
