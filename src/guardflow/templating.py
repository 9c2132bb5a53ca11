"""Jinja2 templates shipped inside guardflow's packages, rendered the same way everywhere.

Each stage that renders a document keeps its template in a `templates/` folder beside its code (the wheel ships
it). HTML templates are escaped automatically; an undefined name is an error, not an empty string.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


@cache
def _environment(package: str) -> Environment:
    return Environment(
        loader=PackageLoader(package, "templates"),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_template(package: str, name: str, **values: Any) -> str:
    """Render `templates/<name>` of `package` (e.g. `guardflow.lineage`) with `values`."""
    return _environment(package).get_template(name).render(**values)
