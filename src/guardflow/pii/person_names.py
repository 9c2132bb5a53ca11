"""Recognise person names by value, in any case and shape, with the public US Census 1990 name lists.

A value is name-like when it is one to four words of letters (initials, hyphens and apostrophes allowed, commas
between words as in "Smith, Anna") and its words are known first names or surnames: a single word must be known,
longer values need at least half of their words known ("anna zyrtowicz", "SMITH, JOHN A."). Accents are
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
# Words that make a value a place, a street or an organisation, not a person, though the words around them may be
# names ("Lake Jennifer", "Johnson Ports", "Smith, Jones and Brown", "Schmidt GmbH", "Via Rossi").
_NOT_A_PERSON = frozenset(
    """and und et y e of the inc llc ltd plc group co corp company gmbh ag kg ohg mbh sa sas sarl spa srl bv nv sl
    ltda eireli associates partners sons holdings services solutions systems international
    lake mount mt north south east west new fort port ports saint st san santa sao city town ville village
    street road avenue ave lane drive court way place square park parkway boulevard bridge bridges brook brooks
    burg bypass camp canyon cape causeway center centers circle circles cliff cliffs club common corner corners
    course courts cove coves creek crescent crest crossing crossroad curve dale dam divide estate estates
    expressway extension extensions fall falls ferry field fields flat flats ford fords forest forge forges fork
    forks freeway garden gardens gateway glen glens green greens grove groves harbor harbors haven heights
    highway hill hills hollow inlet island islands isle junction junctions key keys knoll knolls landing
    light lights loaf lock locks lodge loop mall manor manors meadow meadows mews mill mills mission motorway
    mountain mountains neck orchard oval overpass pass passage path pike pine pines plain plains plaza point
    points prairie radial ramp ranch rapid rapids rest ridge ridges river roads route row rue run shoal shoals
    shore shores skyway spring springs spur spurs squares station stravenue stream streets summit terrace
    throughway trace track trafficway trail trailer tunnel turnpike underpass union unions valley valleys via
    viaduct view views villages vista walk walks wall ways well wells allee chemin impasse calle avenida camino
    paseo plaza viale piazza corso vicolo rua travessa alameda praca strasse weg platz gasse ring damm straat
    laan plein gracht kade sainte bains foret colonia area loteamento rodovia vale canale contrada stretto villa
    castel lago monte borgo""".upper().split()
)
_MAX_WORDS = 4
_WORD_PUNCTUATION = str.maketrans("", "", ".'-’")


@lru_cache(maxsize=2)
def _read_list(name: str) -> frozenset[str]:
    data = files("guardflow.pii").joinpath("names").joinpath(name).read_bytes()
    return frozenset(
        line.strip() for line in gzip.decompress(data).decode("ascii").splitlines() if line.strip()
    )


def known_first_names() -> frozenset[str]:
    """The bundled first names, upper case (US Census 1990, male and female)."""
    return _read_list("first_names.txt.gz")


@lru_cache(maxsize=1)
def known_names() -> frozenset[str]:
    """Every first name and surname of the bundled lists, upper case."""
    return known_first_names() | _read_list("surnames.txt.gz")


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
    if names_a_place(value):
        return False
    known = known_names()
    matched = sum(_is_known(word, known) for word in words)
    if len(words) == 1 or matched == len(words):
        return matched == len(words)
    # Some words unknown (a rare or foreign surname): a person still when half are names and one a first name.
    first_names = known_first_names()
    return matched * 2 >= len(words) and any(fold_word(word) in first_names for word in words)


def names_a_place(value: str) -> bool:
    """Whether a value holds a word that makes it a place, street or organisation ("Lake", "Inc", "Via")."""
    return any(fold_word(token) in _NOT_A_PERSON for token in _SPLIT.split(value.strip()) if token)


def _is_known(word: str, known: frozenset[str]) -> bool:
    folded = fold_word(word)
    if folded in known:
        return True
    parts = [part for part in folded.split("-") if part]
    return len(parts) > 1 and all(part in known for part in parts)  # double-barrelled: Holloway-Smith
