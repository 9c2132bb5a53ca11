"""Fixtures shared by the unit tests of several subpackages."""

from __future__ import annotations

import pytest

from guardflow.settings import Settings
from tests.malformed_corpus import adult_lines


@pytest.fixture(scope="module")
def base_lines(adult_settings: Settings) -> list[bytes]:
    """The first 100 lines of adult.data, as written there: what the malformed corpus is built from."""
    return adult_lines(adult_settings)
