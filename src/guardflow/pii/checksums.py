"""Identifiers that carry their own check digits: payment card numbers (Luhn) and IBANs (ISO 13616, mod 97).

The check digits make these patterns far more precise than digits alone: a random 16-digit number passes the Luhn
check one time in ten, so a column is only taken for card numbers when most of its values pass. The same idea as
Presidio's CreditCardRecognizer and IbanRecognizer, without its spaCy dependency (see README, "The PII guard").
"""

from __future__ import annotations

import re

PAYMENT_CARD_PATTERN = r"\d{4}(?:[ -]?\d{3,4}){2,3}(?:[ -]?\d{1,3})?"
IBAN_PATTERN = r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]{1,4}){3,8}"
_CARD_DIGITS = (13, 19)
_IBAN_LENGTH = (15, 34)
_SEPARATORS = re.compile(r"[ -]")


def is_payment_card(text: str) -> bool:
    """13 to 19 digits (spaces or dashes between groups allowed) whose Luhn check digit is right."""
    digits = _SEPARATORS.sub("", text)
    if not digits.isdigit() or not _CARD_DIGITS[0] <= len(digits) <= _CARD_DIGITS[1]:
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def is_iban(text: str) -> bool:
    """A country code, two check digits and an account part whose mod-97 check (ISO 7064) gives 1."""
    compact = text.replace(" ", "").upper()
    if not _IBAN_LENGTH[0] <= len(compact) <= _IBAN_LENGTH[1] or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1
