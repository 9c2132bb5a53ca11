"""Find personal data before anything is trained, logged or reported, and apply the configured policy to it.

Each column is judged by its name (`email`, `first_name`, `ssn`, `dob`, ...) and by an evenly spaced sample of
its values (emails, phone numbers, national ids, payment cards and IBANs with valid check digits, street addresses,
dates spread like birth dates, person names in any case (public Census name lists), and free text that contains
emails, phones, ids, cards, IBANs or addresses). Findings carry the kinds found
and the share of sampled values matching each, never a value. Columns with a policy are dropped or replaced by a
keyed hash; a column found with no policy, or one the policy blocks, stops the run (`PiiError`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from guardflow.data.table import LINE
from guardflow.errors import ConfigError, PiiError
from guardflow.pii.checksums import IBAN_PATTERN, PAYMENT_CARD_PATTERN, is_iban, is_payment_card
from guardflow.pii.person_names import is_name_like, names_a_place
from guardflow.settings import DatasetSettings, PiiSettings, Settings

PERSON_NAME = "person_name"
EMAIL = "email"
PHONE = "phone"
NATIONAL_ID = "national_id"
STREET_ADDRESS = "street_address"
BIRTH_DATE = "birth_date"
PAYMENT_CARD = "payment_card"
IBAN = "iban"
KINDS = (PERSON_NAME, EMAIL, PHONE, NATIONAL_ID, STREET_ADDRESS, BIRTH_DATE, PAYMENT_CARD, IBAN)

REDACTED = "<redacted>"
# A malformed line in the quarantine, unless `pii.keep_malformed_text`: its length and keyed hash, not its text.
LINE_LENGTH = "line_length"
LINE_HMAC = "line_hmac"

# Column names are compared as lower-case words joined by "_": "firstName", "First Name" and "first-name" all
# read "first_name". Each rule matches whole words only, so "username" is a name but "filename" is not.
_W = r"(?:^|_)"
_E = r"(?:_|$)"
_NAME_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        PERSON_NAME,
        re.compile(
            rf"^names?$|{_W}(?:first|last|full|given|family|middle|maiden|sur|fore|customer|patient|person|"
            rf"client|employee|user|contact|owner|holder|applicant|member|account_holder|f|l|m|nick)_?names?{_E}"
            # a bare part of a name ("first", "last", "given", "surname") and names in other languages
            rf"|^(?:first|last|given|family|middle|forename|surname)s?$"
            rf"|{_W}name_(?:first|last|given|family|full|middle){_E}"
            rf"|{_W}(?:vorname|nachname|prenom|nom_de_famille|nombre|apellidos?|cognome|voornaam|achternaam){_E}"
        ),
    ),
    (EMAIL, re.compile(rf"{_W}(?:e_?mail|mail)(?:_?address)?{_E}")),
    (
        PHONE,
        re.compile(rf"{_W}(?:phone|telephone|tel|mobile|cellphone|cell_phone|fax)(?:_?(?:number|no))?{_E}"),
    ),
    (
        NATIONAL_ID,
        re.compile(
            rf"{_W}(?:ssn|social_security(?:_number)?|national_?(?:id|insurance)(?:_number)?|nino|passport"
            rf"(?:_number)?|tax_?id|tin|drivers?_licen[cs]e|id_card|nhs_number){_E}"
        ),
    ),
    (
        STREET_ADDRESS,
        re.compile(
            rf"{_W}(?<!ip_)(?<!mac_)(?<!mail_)(?:street|addr|address|zip|zip_?code|post_?code|postal_code)"
            rf"(?:_?(?:line)?_?\d)?{_E}"
        ),
    ),
    (BIRTH_DATE, re.compile(rf"{_W}(?:dob|born|birth|birthday|birthdate|birth_?date|date_of_birth){_E}")),
    (
        PAYMENT_CARD,
        re.compile(rf"{_W}(?:credit_?card|debit_?card|card_?(?:number|no|num)|cc_?(?:number|no|num)){_E}"),
    ),
    (IBAN, re.compile(rf"{_W}(?:iban|bank_?account(?:_?(?:number|no))?){_E}")),
)

# Whole values. Order matters: a value counts as the first kind it matches (an SSN is also digits and dashes).
_EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
_SSN = r"\d{3}-\d{2}-\d{4}"
_NINO = r"[A-CEGHJ-PR-TW-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]"  # UK national insurance number
_SIN = r"\d{3}[ -]\d{3}[ -]\d{3}"  # Canadian social insurance number and alike
_NATIONAL_ID = rf"(?:{_SSN}|{_NINO}|{_SIN})"
_PHONE = r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}|\+\d{7,15}"
_STREET_TYPES = (
    r"street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|terrace|ter|circle|cir|"
    r"parkway|pkwy|highway|hwy|square|sq|close|crescent"
)
_ADDRESS = rf"\d{{1,6}}[A-Za-z]?\s+(?:[A-Za-z0-9.'-]+\s+){{0,4}}(?:{_STREET_TYPES})\b\.?(?:[\s,].*)?"
_NAME_WORD = r"(?:Mc[A-Z][a-z]+|[A-Z]'[A-Z][a-z]+|[A-Z][a-z]+)(?:-[A-Z][a-z]+)?"
_PERSON = rf"{_NAME_WORD}(?:\s+[A-Z]\.)?(?:\s+{_NAME_WORD}){{1,2}}"
_MONTHS = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_DATE_FORMS = (
    re.compile(r"(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})"),
    re.compile(r"(?P<d>\d{1,2})[-/.](?P<m>\d{1,2})[-/.](?P<y>\d{4})"),  # day or month first: either is a date
    re.compile(rf"(?P<d>\d{{1,2}})\s+(?P<mn>{_MONTHS})\s+(?P<y>\d{{4}})", re.IGNORECASE),
    re.compile(rf"(?P<mn>{_MONTHS})\s+(?P<d>\d{{1,2}}),?\s+(?P<y>\d{{4}})", re.IGNORECASE),
)

_WHOLE_VALUE: tuple[tuple[str, re.Pattern[str]], ...] = (
    (EMAIL, re.compile(_EMAIL)),
    (NATIONAL_ID, re.compile(_NATIONAL_ID)),
    (PAYMENT_CARD, re.compile(PAYMENT_CARD_PATTERN)),
    (IBAN, re.compile(IBAN_PATTERN)),
    (STREET_ADDRESS, re.compile(_ADDRESS, re.IGNORECASE)),
    (PHONE, re.compile(_PHONE)),
    (PERSON_NAME, re.compile(_PERSON)),
)
# Inside free text: the same identifiers, bounded so that they are not part of a longer token.
_IN_TEXT: tuple[tuple[str, re.Pattern[str]], ...] = (
    (EMAIL, re.compile(_EMAIL)),
    (PAYMENT_CARD, re.compile(rf"(?<![\w-]){PAYMENT_CARD_PATTERN}(?![\w-])")),
    (IBAN, re.compile(rf"(?<![\w-]){IBAN_PATTERN}(?![\w-])")),
    (NATIONAL_ID, re.compile(rf"(?<![\w-]){_NATIONAL_ID}(?![\w-])")),
    (
        STREET_ADDRESS,
        re.compile(rf"(?<![\w-])\d{{1,6}}\s+(?:[A-Z][a-z]+\s+){{1,3}}(?:{_STREET_TYPES})\b", re.I),
    ),
    (PHONE, re.compile(rf"(?<![\w.+-])(?:{_PHONE})(?![\w-])")),
)
# Stray values in columns no policy covers: only the unambiguous identifiers, never names or dates.
_STRAY_HINT = re.compile(r"@|\+\d|\d[ .()-]+\d")
_STRAY = re.compile(rf"{_EMAIL}|(?<![\w-]){_NATIONAL_ID}(?![\w-])|(?<![\w.+-])(?:{_PHONE})(?![\w-])")

_PHONE_DIGITS = (7, 15)
# Person names are told from place or product names by how many different values there are.
_MIN_NAME_DISTINCT_SHARE = 0.5
# Birth dates of a population spread over decades; event dates (orders, visits) usually do not.
_MIN_BIRTH_YEAR_SPREAD = 15
_YEARS = (1900, 2100)


@dataclass(frozen=True)
class ColumnFinding:
    """Why a column looks like personal data: kinds its name suggests, and shares of sampled values per kind."""

    column: str
    by_name: tuple[str, ...]
    shares: dict[str, float]  # kind -> share of sampled non-missing values that are one
    text_shares: dict[str, float]  # kind -> share of sampled values with one inside longer text
    sampled: int

    @property
    def kinds(self) -> tuple[str, ...]:
        found = [*self.by_name, *self.shares, *(f"{kind} in free text" for kind in self.text_shares)]
        return tuple(dict.fromkeys(found))

    @property
    def all_shares(self) -> dict[str, float]:
        """Shares of sampled values per kind, free-text kinds named `<kind> in free text`."""
        return {**self.shares, **{f"{kind} in free text": share for kind, share in self.text_shares.items()}}

    def describe(self) -> str:
        """One phrase, e.g. `email (name; 98% of 1000 sampled values)`: kinds and shares, never a value."""
        parts = [f"{kind} (name)" for kind in self.by_name if kind not in self.shares]
        parts += [
            f"{kind} ({share:.0%} of {self.sampled} sampled values)" for kind, share in self.shares.items()
        ]
        parts += [
            f"{kind} in free text ({share:.0%} of {self.sampled} sampled values)"
            for kind, share in self.text_shares.items()
        ]
        return f"'{self.column}': " + ", ".join(parts)


@dataclass(frozen=True)
class GuardResult:
    """The rows after the guard, what was found, and what was done to each column."""

    rows: pd.DataFrame
    findings: tuple[ColumnFinding, ...]
    dropped: tuple[str, ...]
    hashed: tuple[str, ...]
    redacted: dict[str, int] = field(default_factory=dict)  # column -> stray values replaced by REDACTED


def normalize_column_name(name: str) -> str:
    """Lower-case words joined by `_`: `dateOfBirth`, `Date of Birth` and `date-of-birth` read `date_of_birth`."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", str(name))
    return "_".join(word for word in re.split(r"[^a-z0-9]+", spaced.lower()) if word)


def kinds_by_name(name: str) -> tuple[str, ...]:
    """The kinds of personal data a column name suggests (empty for an ordinary name)."""
    normalized = normalize_column_name(name)
    found = [kind for kind, pattern in _NAME_RULES if pattern.search(normalized)]
    if EMAIL in found and STREET_ADDRESS in found:  # "email_address" is an email
        found.remove(STREET_ADDRESS)
    return tuple(found)


def detect_pii(rows: pd.DataFrame, pii: PiiSettings) -> tuple[ColumnFinding, ...]:
    """Every column that looks like personal data, by name or by a sample of its values, in column order."""
    findings = []
    for column in rows.columns:
        finding = _judge_column(str(column), rows[column], pii)
        if finding is not None:
            findings.append(finding)
    return tuple(findings)


def hash_values(values: pd.Series, key: bytes) -> pd.Series:
    """Each value's keyed HMAC-SHA256 (hex): stable for one key, unlinkable without it; missing stays missing."""
    if not key:
        raise ValueError("hashing personal data needs a non-empty key")

    def digest(value: object) -> object:
        if pd.isna(value):
            return value
        return hmac.new(key, str(value).encode("utf-8"), hashlib.sha256).hexdigest()

    return values.map(digest)


def guard_pii(
    rows: pd.DataFrame, pii: PiiSettings, key: Callable[[], bytes] | None = None, stop: bool = True
) -> GuardResult:
    """Apply the PII policy to text rows as read: check, detect, then drop, hash and redact.

    Raises `ConfigError` when the policy names a column the data does not have, and `PiiError` (one line naming
    the columns and what was found in them, never a value) when a blocked column is present or a column looks
    like personal data and has no policy. `key` is called only when a column is to be hashed. `stop=False`
    (drafting a contract for review): no `PiiError`; blocked columns are dropped, and the caller warns about
    the findings with no policy.
    """
    present = [str(column) for column in rows.columns]
    missing = [name for name in pii.columns if name not in present]
    if missing:
        raise ConfigError(f"pii.columns names columns that are not in the data: {missing}")
    findings = detect_pii(rows, pii)
    found = {finding.column: finding for finding in findings}
    problems = []
    blocked = [name for name, policy in pii.columns.items() if policy == "block"]
    if blocked:
        problems.append("blocked by pii policy: " + "; ".join(_describe(name, found) for name in blocked))
    uncovered = [finding for finding in findings if finding.column not in pii.columns]
    if uncovered:
        problems.append(
            "personal data in columns with no pii policy: "
            + "; ".join(finding.describe() for finding in uncovered)
            + " (set pii.columns.<column> to drop, hash or block)"
        )
    if problems and stop:
        raise PiiError("PII guard stopped the run: " + "; ".join(problems))

    dropped = tuple(
        name for name, policy in pii.columns.items() if policy == "drop" or (not stop and name in blocked)
    )
    hashed = tuple(name for name, policy in pii.columns.items() if policy == "hash")
    guarded = rows.drop(columns=list(dropped))
    if hashed:
        if key is None:
            raise ValueError("guard_pii needs a key to hash columns")
        secret = key()
        for name in hashed:
            guarded[name] = hash_values(guarded[name], secret)
    redacted: dict[str, int] = {}
    if pii.redact_stray_values:
        for name in guarded.columns:
            if name in hashed:
                continue
            stray = _stray_values(guarded[name])
            if stray.any():
                guarded.loc[stray, name] = REDACTED
                redacted[str(name)] = int(stray.sum())
    return GuardResult(rows=guarded, findings=findings, dropped=dropped, hashed=hashed, redacted=redacted)


def declared_columns(settings: Settings) -> list[str]:
    """The allow-list: features (sensitive attributes among them), the label, and columns the PII policy hashes.

    Nothing else is ever persisted: every other column of the file is dropped right after the guard.
    """
    dataset = settings.dataset
    hashed = [name for name, policy in settings.pii.columns.items() if policy == "hash"]
    return [*dataset.features, dataset.label.column, *hashed]


def keep_declared(rows: pd.DataFrame, settings: Settings) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The rows with only the declared columns, in file order, and the names of the undeclared ones dropped."""
    allowed = set(declared_columns(settings))
    undeclared = tuple(str(column) for column in rows.columns if column not in allowed)
    return (rows.drop(columns=list(undeclared)) if undeclared else rows), undeclared


def mask_malformed(malformed: pd.DataFrame, key: bytes) -> pd.DataFrame:
    """Malformed lines without their text: its length in characters and its keyed HMAC-SHA256 instead.

    A line that cannot be parsed may hold any column, undeclared ones too; its number (the index), length and
    hash let a person find and compare it in the source file without the run ever writing what it said.
    """
    masked = malformed.drop(columns=[LINE])
    texts = malformed[LINE].astype("object")
    masked.insert(0, LINE_HMAC, hash_values(texts, key).astype("str"))
    masked.insert(0, LINE_LENGTH, texts.map(lambda text: len(str(text))).astype("int64"))
    return masked


def uncovered_findings(findings: tuple[ColumnFinding, ...], pii: PiiSettings) -> tuple[ColumnFinding, ...]:
    """The findings in columns the policy says nothing about: each needs a reviewer's decision."""
    return tuple(finding for finding in findings if finding.column not in pii.columns)


def contract_dataset(settings: Settings) -> DatasetSettings:
    """The dataset as the contract sees it after the guard: only the declared columns (`declared_columns`).

    A file's `columns` name every column of the file (undeclared and dropped ones too, to read it, and the file
    must carry exactly those); the contract checks the declared columns that are left, in the file's order.
    Hashed columns stay in the data, for joins, and are never features.
    """
    dataset = settings.dataset
    declared = declared_columns(settings)
    layout = dataset.columns if dataset.columns is not None else declared
    columns = [name for name in layout if name in declared]
    if columns == dataset.expected_columns:
        return dataset
    return dataset.model_copy(update={"columns": columns})


def _describe(name: str, found: dict[str, ColumnFinding]) -> str:
    finding = found.get(name)
    return finding.describe() if finding else f"'{name}'"


def _judge_column(name: str, column: pd.Series, pii: PiiSettings) -> ColumnFinding | None:
    by_name = kinds_by_name(name)
    sample = _sample(column, pii.sample_size)
    shares: dict[str, float] = {}
    text_shares: dict[str, float] = {}
    if len(sample):
        shares = _whole_value_shares(sample, pii.min_share)
        if not shares:
            text_shares = _text_shares(sample, pii.min_text_share)
    if not (by_name or shares or text_shares):
        return None
    return ColumnFinding(
        column=name, by_name=by_name, shares=shares, text_shares=text_shares, sampled=len(sample)
    )


def _sample(column: pd.Series, size: int) -> list[str]:
    """Up to `size` non-missing values, evenly spaced over the column: deterministic, and not only its head."""
    values = column.dropna().astype(str).str.strip()
    values = values[values != ""]
    if len(values) > size:
        values = values.iloc[np.linspace(0, len(values) - 1, size).round().astype(int)]
    return values.tolist()


def _whole_value_kind(value: str) -> str | None:
    if _date_year(value) is not None:
        return None  # dates are judged as a column (see _whole_value_shares); they are not phone numbers
    for kind, pattern in _WHOLE_VALUE:
        if pattern.fullmatch(value):
            if (kind == PHONE and not _is_phone_length(value)) or not _passes_check(kind, value):
                continue
            if kind == PERSON_NAME and names_a_place(value):
                continue  # "Lake Jennifer", "Johnson Ports": capitalised words, but a place
            return kind
    # Names in any case and shape ("anna", "SMITH, JOHN"), looked up in the public Census name lists.
    return PERSON_NAME if is_name_like(value) else None


def _whole_value_shares(sample: list[str], min_share: float) -> dict[str, float]:
    """Kinds that at least `min_share` of the sampled values are, with their shares."""
    total = len(sample)
    kinds = [_whole_value_kind(value) for value in sample]
    shares: dict[str, float] = {}
    for kind in KINDS:
        matching = [value for value, found in zip(sample, kinds, strict=True) if found == kind]
        share = len(matching) / total
        if share < min_share:
            continue
        if kind == PERSON_NAME and len(set(matching)) / len(matching) < _MIN_NAME_DISTINCT_SHARE:
            continue  # few distinct values: places, products or categories, not people
        shares[kind] = round(share, 4)
    years = [year for year in (_date_year(value) for value in sample) if year is not None]
    if years and len(years) / total >= min_share:
        low, high = np.percentile(years, [10, 90])
        if high - low >= _MIN_BIRTH_YEAR_SPREAD:
            shares[BIRTH_DATE] = round(len(years) / total, 4)
    return shares


def _text_shares(sample: list[str], min_share: float) -> dict[str, float]:
    """Kinds found inside free text (values with spaces) in at least `min_share` of the sampled values."""
    total = len(sample)
    counts = dict.fromkeys((kind for kind, _ in _IN_TEXT), 0)
    for value in sample:
        if not re.search(r"\s", value):
            continue
        for kind, pattern in _IN_TEXT:
            if _search_outside_dates(pattern, value, kind):
                counts[kind] += 1
    return {
        kind: round(count / total, 4)
        for kind, count in counts.items()
        if count and count / total >= min_share
    }


def _search_outside_dates(pattern: re.Pattern[str], value: str, kind: str) -> bool:
    for match in pattern.finditer(value):
        text = match.group(0)
        if kind == PHONE and (_date_year(text) is not None or not _is_phone_length(text)):
            continue
        if not _passes_check(kind, text):
            continue
        return True
    return False


def _passes_check(kind: str, text: str) -> bool:
    """Card numbers and IBANs count only with valid check digits; other kinds have none."""
    if kind == PAYMENT_CARD:
        return is_payment_card(text)
    if kind == IBAN:
        return is_iban(text)
    return True


def _is_phone_length(text: str) -> bool:
    return _PHONE_DIGITS[0] <= sum(char.isdigit() for char in text) <= _PHONE_DIGITS[1]


def _stray_values(column: pd.Series) -> pd.Series:
    """Which cells hold an email, phone number or national id (also inside text); dates are not strays."""
    text = column.astype("string")
    # A cheap pass first (an @, a +digit, or digits around a separator); the full patterns only on what it keeps.
    candidates = text.str.contains(_STRAY_HINT, regex=True, na=False)
    if not candidates.any():
        return candidates
    candidates[candidates] = text[candidates].str.contains(_STRAY, regex=True, na=False)
    for index in candidates[candidates].index:
        value = str(text.at[index])
        candidates.at[index] = any(
            _search_outside_dates(pattern, value, kind)
            for kind, pattern in _IN_TEXT
            if kind != STREET_ADDRESS
        )
    return candidates


def _date_year(value: str) -> int | None:
    """The year of a value that is a calendar date in a common format, else None."""
    for form in _DATE_FORMS:
        match = form.fullmatch(value.strip())
        if match is None:
            continue
        groups = match.groupdict()
        year, day = int(groups["y"]), int(groups["d"])
        month = int(groups["m"]) if groups.get("m") else None
        if not (_YEARS[0] <= year <= _YEARS[1] and 1 <= day <= 31):
            continue
        if month is not None and not (1 <= month <= 31 and min(month, day) <= 12):
            continue
        return year
    return None
