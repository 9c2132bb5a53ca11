"""The contract's validation result as Great Expectations Data Docs: one HTML page for a person to read.

The page is GX's own validation-results page. It lists every expectation with its outcome and counts, never
the failing values (the suite runs with `exclude_unexpected_values`), so it is safe to keep and to log. GX's
page loads its styles from public CDNs; offline it shows the same content unstyled.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuiteValidationResult


def write_data_docs(validation: ExpectationSuiteValidationResult, path: Path) -> Path:
    """Render one validation result to `path` (HTML) and return the path."""
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    page = ValidationResultsPageRenderer().render(validation)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(DefaultJinjaPageView().render(page), encoding="utf-8")
    return path
