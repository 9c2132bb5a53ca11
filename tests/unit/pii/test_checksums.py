"""Payment cards and IBANs: found by their check digits, as a column, inside free text, and by column name."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from faker import Faker

from guardflow.pii.checksums import is_iban, is_payment_card
from guardflow.pii.guard_pii import IBAN, PAYMENT_CARD, detect_pii, kinds_by_name
from guardflow.settings import PiiSettings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4111 1111 1111 1111", True),
        ("4111-1111-1111-1112", False),
        ("5500005555555559", True),
        ("1234", False),
    ],
)
def test_card_numbers_need_a_valid_luhn_digit(text: str, expected: bool) -> None:
    assert is_payment_card(text) is expected, f"is_payment_card({text!r})"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GB82 WEST 1234 5698 7654 32", True),
        ("DE89370400440532013000", True),
        ("GB82 WEST 1234 5698 7654 33", False),
    ],
)
def test_ibans_need_a_valid_mod97_check(text: str, expected: bool) -> None:
    assert is_iban(text) is expected, f"is_iban({text!r})"


def test_card_and_iban_columns_are_found_and_random_digits_are_not() -> None:
    # given Faker's card numbers and IBANs under neutral names, and random 16-digit numbers
    fake = Faker("en_GB")
    fake.seed_instance(5)
    digits = np.random.default_rng(5).integers(10**15, 10**16, 300)
    rows = pd.DataFrame(
        {
            "c1": [fake.credit_card_number() for _ in range(300)],
            "c2": [fake.iban() for _ in range(300)],
            "c3": [f"paid with {fake.credit_card_number()} today" for _ in range(300)],
            "c4": [str(number) for number in digits],
        }
    )
    # when judged
    found = {finding.column: finding.kinds for finding in detect_pii(rows, PiiSettings())}
    # then cards and IBANs are found, in text too, and random digits (10% pass Luhn by chance) are not
    assert PAYMENT_CARD in found.get("c1", ()) and IBAN in found.get("c2", ()), f"found {found}"
    assert f"{PAYMENT_CARD} in free text" in found.get("c3", ()), f"cards in free text: {found}"
    assert "c4" not in found, f"random numbers are not cards: {found}"
    assert PAYMENT_CARD in kinds_by_name("CreditCardNumber") and IBAN in kinds_by_name("iban"), "by name"
