"""Check OpenLineage events against the vendored spec (tests/data/openlineage-spec), offline.

The event is validated against `#/$defs/RunEvent` of OpenLineage.json, and every facet against the
facet schema file its `_schemaURL` names, under the key that file declares for it. The client ships no
schemas, so this is the only check that what we emit is what Marquez and other consumers expect.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SPEC_DIR = Path(__file__).parent / "data" / "openlineage-spec"
GUARDFLOW_FACETS = Path(__file__).parents[1] / "src" / "guardflow" / "schemas" / "facets"
_MAX_MESSAGE = 240


@dataclass(frozen=True)
class OpenLineageSpec:
    """The core schema's `$id`, the facet schemas by file name, and a registry that resolves them all."""

    core_id: str
    facet_schemas: dict[str, dict[str, Any]]
    registry: Registry

    def validator(self, schema: dict[str, Any]) -> Draft202012Validator:
        # The format checker makes `uuid` run ids and `date-time` event times count, not just their type.
        return Draft202012Validator(
            schema, registry=self.registry, format_checker=Draft202012Validator.FORMAT_CHECKER
        )


@functools.cache
def load_spec(spec_dir: Path = SPEC_DIR) -> OpenLineageSpec:
    """Read OpenLineage.json and facets/*.json once per session, registered under their `$id`."""
    core = json.loads((spec_dir / "OpenLineage.json").read_text(encoding="utf-8"))
    # The spec's facets, and guardflow's own custom facets shipped with the package.
    facet_files = [*sorted((spec_dir / "facets").glob("*.json")), *sorted(GUARDFLOW_FACETS.glob("*.json"))]
    facet_schemas = {path.name: json.loads(path.read_text(encoding="utf-8")) for path in facet_files}
    for schema in [core, *facet_schemas.values()]:
        Draft202012Validator.check_schema(schema)
    registry: Registry = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in [core, *facet_schemas.values()]
    )
    return OpenLineageSpec(core_id=core["$id"], facet_schemas=facet_schemas, registry=registry)


def read_events(path: Path) -> list[dict[str, Any]]:
    """The events of a JSON-lines file, one object per line (a line that is not JSON raises)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _facets_of(event: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """(where, key, facet) for every facet of a run event: run, job, dataset, input and output facets."""
    for part in ("run", "job"):
        for key, facet in _mapping(_mapping(event.get(part)).get("facets")).items():
            yield f"{part}.facets", key, facet
    for side, own in (("inputs", "inputFacets"), ("outputs", "outputFacets")):
        datasets = event.get(side)
        for index, dataset in enumerate(datasets if isinstance(datasets, list) else []):
            for group in ("facets", own):
                for key, facet in _mapping(_mapping(dataset).get(group)).items():
                    yield f"{side}[{index}].{group}", key, facet


def _errors(validator: Draft202012Validator, instance: Any, where: str) -> list[str]:
    problems = []
    for error in sorted(validator.iter_errors(instance), key=lambda error: list(error.absolute_path)):
        path = "/".join(str(part) for part in error.absolute_path)
        problems.append(f"{where}: {path or '(root)'}: {error.message[:_MAX_MESSAGE]}")
    return problems


def facet_problems(key: str, facet: Any, where: str = "facet") -> list[str]:
    """What is wrong with one facet, judged by the schema file its `_schemaURL` names (empty if nothing)."""
    spec = load_spec()
    label = f"{where}.{key}"
    if not isinstance(facet, dict) or not isinstance(facet.get("_schemaURL"), str):
        return [f"{label}: not an object with a `_schemaURL`"]
    file_name = urlsplit(facet["_schemaURL"]).path.rsplit("/", 1)[-1]
    schema = spec.facet_schemas.get(file_name)
    if schema is None:
        return [f"{label}: no schema file {file_name!r} in {SPEC_DIR} for {facet['_schemaURL']}"]
    declared_keys = sorted(schema.get("properties", {}))
    if key not in declared_keys:
        # Without this check a misnamed facet would validate vacuously: the files only describe their own key.
        return [f"{label}: {file_name} declares this facet under {declared_keys}, not {key!r}"]
    return _errors(spec.validator(schema), {key: facet}, label)


def event_problems(event: Any) -> list[str]:
    """Everything wrong with a run event under the spec: the event itself, then each of its facets."""
    spec = load_spec()
    run_event = spec.validator({"$ref": f"{spec.core_id}#/$defs/RunEvent"})
    problems = _errors(run_event, event, "event")
    if isinstance(event, dict):
        for where, key, facet in _facets_of(event):
            problems.extend(facet_problems(key, facet, where))
    return problems
