"""Draft a first config for a new dataset (`guardflow init`), for a person to review before anything is trained.

From the file's text rows: every column is listed (`dataset.columns`); columns that look personal are never
features and get a commented policy line to decide on; a column whose values all parse as numbers is a numeric
feature with the observed range as bounds; one with few distinct values a categorical feature with the observed
list; any other column is left undeclared (dropped right after the PII guard). Columns that look personal get
the policy `block` (a run stops while the file has them) until a person changes it to drop or hash. Observed
bounds and lists are statistics of the people in the data: each is marked `data-derived` in a comment, and the
config says `dataset.reviewed: false`, which `train` refuses until a person has replaced them with public bounds
and lists. Every other section keeps its documented default (`guardflow config-schema`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

import pandas as pd

from guardflow.errors import ConfigError

# A column with at most this many distinct values (and not all numbers) is drafted as categorical.
MAX_CATEGORIES = 30
# A column whose values all parse as numbers is numeric, unless every value differs (an identifier, not a feature).
MIN_ROWS_FOR_IDENTIFIER = 20
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


@dataclass(frozen=True)
class DataFile:
    """Where the config finds a file (relative to the config) and the sha256 of its content."""

    path: str
    sha256: str


@dataclass(frozen=True)
class DraftedConfig:
    """The config's YAML text, and what a reviewer must do before `train` accepts it."""

    text: str
    personal: dict[str, tuple[str, ...]]  # column -> kinds of personal data found in it
    undeclared: tuple[str, ...]
    notes: tuple[str, ...]


def dataset_id(name: str) -> str:
    """A dataset id from a file name: lower case letters, digits, `_` and `-`."""
    cleaned = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")
    return cleaned if cleaned and cleaned[0].isalnum() else f"data-{cleaned}".rstrip("-")


def draft_config(
    rows: pd.DataFrame,
    *,
    dataset: str,
    label: str,
    sensitive: list[str],
    files: dict[str, DataFile],
    suite: str,
    personal: dict[str, tuple[str, ...]],
    file_format: str = "csv",
    encoding: str = "utf-8",
) -> DraftedConfig:
    """The YAML of a config to review; raises `ConfigError` when the label or a sensitive column cannot be one."""
    columns = [str(column) for column in rows.columns]
    if label not in columns:
        raise ConfigError(f"--label {label!r} is not a column of the data (columns: {columns})")
    if label in personal:
        raise ConfigError(f"--label {label!r} looks like personal data ({', '.join(personal[label])})")
    classes = rows[label].dropna().astype(str).str.strip().value_counts()
    if len(classes) != 2:
        raise ConfigError(
            f"--label {label!r} has {len(classes)} distinct values; guardflow needs exactly two"
        )
    positive, negative = str(classes.index[-1]), str(classes.index[0])  # the rarer class is the positive one
    features: dict[str, str] = {}
    undeclared: list[str] = []
    notes: list[str] = []
    for column in columns:
        if column == label or column in personal:
            continue
        feature = _draft_feature(rows[column], force_categorical=column in sensitive)
        if feature is None:
            undeclared.append(column)
        else:
            features[column] = feature
    for column in sensitive:
        if column not in columns:
            raise ConfigError(f"--sensitive {column!r} is not a column of the data")
        if column in personal or column not in features:
            raise ConfigError(f"--sensitive {column!r} cannot be a feature (personal data, or free text)")
    if not features:
        raise ConfigError("no column of the data can be a feature: nothing to train on")
    notes.append(
        f"label {label!r}: positive class {positive!r} (the rarer), negative {negative!r}: check them"
    )
    if personal:
        notes.append(
            "columns that look personal, never features: "
            + ", ".join(f"{column} ({', '.join(kinds)})" for column, kinds in personal.items())
            + "; each is `block` in pii.columns: change it to drop or hash"
        )
    if undeclared:
        notes.append(f"undeclared (dropped right after the PII guard, never stored): {undeclared}")
    notes.append(
        "bounds and category lists are data-derived: replace them with public ones, then set reviewed"
    )
    text = _render(
        dataset, columns, files, label, (positive, negative), sensitive, features, suite, personal, undeclared,
        file_format, encoding,
    )  # fmt: skip
    return DraftedConfig(text=text, personal=personal, undeclared=tuple(undeclared), notes=tuple(notes))


def _draft_feature(values: pd.Series, force_categorical: bool) -> str | None:
    """A feature's YAML (flow style, with its comment), or None for a column that cannot be one."""
    present = values.dropna().astype(str).str.strip()
    present = present[present != ""]
    if present.empty:
        return None
    distinct = sorted(present.unique())
    numeric = present.map(lambda value: bool(_NUMBER.match(value))).all()
    if numeric and len(present) >= MIN_ROWS_FOR_IDENTIFIER and present.is_unique:
        return None  # every value distinct: a row number or an identifier, not something to learn from
    if numeric and not force_categorical:
        numbers = pd.to_numeric(present)
        low, high = math.floor(float(numbers.min())), math.ceil(float(numbers.max()))
        high = high if high > low else low + 1
        return (
            f"{{type: numeric, min: {low}, max: {high}}}"
            "   # data-derived bounds (observed min and max): replace with public ones"
        )
    if len(distinct) <= MAX_CATEGORIES or force_categorical:
        return (
            f"{{type: categorical, categories: {json.dumps(distinct, ensure_ascii=False)}}}"
            "   # data-derived list (observed values): replace with the public list"
        )
    return None


def _render(
    dataset: str,
    columns: list[str],
    files: dict[str, DataFile],
    label: str,
    classes: tuple[str, str],
    sensitive: list[str],
    features: dict[str, str],
    suite: str,
    personal: dict[str, tuple[str, ...]],
    undeclared: list[str],
    file_format: str,
    encoding: str,
) -> str:
    quote = json.dumps  # a JSON string is a YAML string: any column name is safe
    lines = [
        f"# guardflow configuration for {dataset}, drafted by `guardflow init` from {files['train'].path}.",
        "# REVIEW BEFORE USE. Bounds and category lists marked data-derived are statistics of the people in the",
        "# data: replace each with a public bound or list (a published codebook, a physical limit), then set",
        "# dataset.reviewed to true; `train` refuses this config until then. Relative paths resolve against this file.",
        "# Sections left out (privacy, model, gate, registry, lineage, drift, poisoning, deploy) keep their defaults:",
        "# `guardflow config-schema` shows every field and default.",
        "",
        "dataset:",
        f"  id: {dataset}",
        f"  format: {file_format}",
    ]
    if encoding != "utf-8":
        lines.append(f"  encoding: {encoding}")
    lines += [
        "  reviewed: false          # set to true once every data-derived bound and list below is replaced",
        "  header: true",
        "  # Every column of the file, in order. Only the features, the label and columns the pii policy hashes are",
        "  # kept; the others are dropped right after the PII guard and named in summary.json.",
        f"  columns: [{', '.join(quote(column) for column in columns)}]",
    ]
    for split in ("train", "test"):
        lines += [
            f"  {split}:",
            f"    path: {quote(files[split].path)}",
            f"    sha256: {quote(files[split].sha256)}",
        ]
    positive, negative = classes
    lines += [
        "  label:",
        f"    column: {quote(label)}",
        f"    positive: {quote(positive)}        # the rarer class: check",
        f"    negative: {quote(negative)}",
        f"  sensitive: [{', '.join(quote(column) for column in sensitive)}]",
        "  features:",
        *[f"    {quote(column)}: {feature}" for column, feature in features.items()],
    ]
    if undeclared:
        lines.append(f"  # not features, dropped after the PII guard: {', '.join(undeclared)}")
    lines += [
        "",
        "contract:",
        f"  suite: {quote(suite)}   # write it with `guardflow contract draft`, then review it",
        "  max_quarantined_share: 0.05",
        "",
        "# PII guard: every column is judged by its name and values; one that looks personal and has no policy",
        "# stops the run. Policies: drop (removed), hash (keyed HMAC-SHA256, kept as an identifier), block.",
        "pii:",
        "  columns:",
    ]
    if personal:
        # `block` until a person decides: a run stops while the file has the column, nothing is lost or kept.
        lines.append("    # found by `guardflow init`: change each block to drop or hash")
        lines += [
            f"    {quote(column)}: block        # {', '.join(kinds)}" for column, kinds in personal.items()
        ]
    else:
        lines[-1] = "  columns: {}"
    return "\n".join(lines) + "\n"
