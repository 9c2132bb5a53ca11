"""Recognise person names by value, in any case and shape, with the public US Census 1990 name lists.

A value is name-like when it is one to four words of letters (initials, hyphens and apostrophes allowed, commas
between words as in "Smith, Anna") and its words are known first names or surnames: a single word must be known,
longer values need at least half of their words known ("anna quillfeather", "SMITH, JOHN A."). Accents are
folded before the look-up ("Müller" is looked up as MULLER). Many surnames are ordinary words (White, Young,
Sales), so a single value proves nothing: the guard judges a column by the share of its sampled values that are
name-like and by how many of them differ (see `guard_pii`). The lists and their licence: names/SOURCE.md.
"""

from __future__ import annotations

import gzip
import re
import unicodedata
from functools import lru_cache
from importlib.resources import files

_SPLIT = re.compile(r"[\s,]+")
_MAX_WORDS = 4
_WORD_PUNCTUATION = str.maketrans("", "", ".'-’")


@lru_cache(maxsize=1)
def known_names() -> frozenset[str]:
    """Every first name and surname of the bundled lists, upper case, accents folded."""
    folder = files("guardflow.pii").joinpath("names")
    names: set[str] = set()
    for name in ("first_names.txt.gz", "surnames.txt.gz"):
        text = gzip.decompress(folder.joinpath(name).read_bytes()).decode("ascii")
        names.update(line.strip() for line in text.splitlines() if line.strip())
    return frozenset(names)


def fold_word(word: str) -> str:
    """Upper case, accents removed, apostrophes and dots dropped: the form the Census lists use (OBRIEN)."""
    decomposed = unicodedata.normalize("NFKD", word)
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    return plain.upper().replace("'", "").replace("’", "").replace(".", "")


def is_name_like(value: str) -> bool:
    """Whether a value reads as a person's name (first, last or full), whatever its case."""
    tokens = [token for token in _SPLIT.split(value.strip()) if token]
    if not 1 <= len(tokens) <= _MAX_WORDS:
        return False
    if not all(token.translate(_WORD_PUNCTUATION).isalpha() for token in tokens):
        return False
    words = [token for token in tokens if len(token.translate(_WORD_PUNCTUATION)) > 1]
    if not words:
        return False
    known = known_names()
    matched = sum(_is_known(word, known) for word in words)
    if len(words) == 1:
        return matched == 1
    return matched * 2 >= len(words)


def _is_known(word: str, known: frozenset[str]) -> bool:
    folded = fold_word(word)
    if folded in known:
        return True
    parts = [part for part in folded.split("-") if part]
    return len(parts) > 1 and all(part in known for part in parts)  # double-barrelled: Holloway-Smith
