"""Idempotent reruns: the keys of a training (the sha256 of its data, its config's hash, the code version) and
the summary of a training skipped because a registered version already has them."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

from guardflow.run.summary import RerunFigures, RunHeader, RunSummary, with_model

if TYPE_CHECKING:
    from guardflow.io.registry import RegisteredVersion


def rerun_figures(data_sources: list[str], config_sha256: str, code_version: str) -> RerunFigures:
    """The keys of a training and the one hash of all three (`run_key`) that a registry search matches on."""
    sources = sorted(set(data_sources))
    canonical = json.dumps({"data": sources, "config": config_sha256, "code": code_version}, sort_keys=True)
    return RerunFigures(
        run_key=hashlib.sha256(canonical.encode()).hexdigest(),
        data_sources=sources,
        config_sha256=config_sha256,
        code_version=code_version,
    )


def unchanged_summary(
    header: RunHeader, version: RegisteredVersion, weights_sha256: str, rerun: RerunFigures
) -> RunSummary:
    """The summary of a training skipped because `version` was trained on the same data, config and code."""
    unchanged = RunSummary(**header.model_dump(), status="unchanged", seconds=0.0, rerun=rerun)
    return with_model(unchanged, version, weights_sha256)
