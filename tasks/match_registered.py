"""Before training: is a version already registered from the same data, config and code? Then nothing is trained."""

from pathlib import Path

from guardflow.io import registry
from guardflow.io.code_version import code_version
from guardflow.io.datasets import content_sha256
from guardflow.io.lineage import file_dataset
from guardflow.run.rerun_key import rerun_figures, unchanged_summary
from guardflow.run.run_context import RunContext
from guardflow.run.summary import RunSummary
from guardflow.settings import settings_hash
from tasks.stage_log import stage_log
from tasks.stage_task import stage_task


@stage_task("match-registered")
def match_registered(
    context: RunContext,
    data_path: str | None,
    data_sources: list[str] | None,
    evaluated_on: list[str],
    force: bool,
    retrain: bool = False,
) -> RunSummary | None:
    """The `unchanged` summary when a registered version matches this training's data (the sha256 of every
    source, and of any file it is judged on: `evaluated_on`), config (its hash) and code version; else None, and
    the keys stay on the context for the version this run registers. `force`: never a match, train again.
    `retrain`: a drift retrain, which always trains (the retrain guard decides whether it runs at all); its keys
    are still recorded."""
    settings = context.settings
    source = Path(data_path) if data_path else settings.dataset.train.path
    with context.stage("match_registered", inputs=[file_dataset(source)]):
        # The configured file's sha256 is in the config (and checked when it is read); a --data file is hashed.
        data_sha256 = content_sha256(source) if data_path else settings.dataset.train.sha256
        judged = [f"judged-on:{content_sha256(Path(path))}" for path in evaluated_on]
        keys = rerun_figures(
            [*(data_sources or [data_sha256]), *judged], settings_hash(settings), code_version()
        )
        matched = None
        if not retrain:
            registry.track_dataset(context.home, settings.dataset.id)
            matched = registry.matching_version(settings.registry.model_name, keys.run_key)
    if matched is None:
        context.rerun = keys
        return None
    version, weights_sha256 = matched
    context.rerun = keys.model_copy(update={"matched_version": version.version, "forced": force})
    if force:
        stage_log.info(
            "rerun     %s version %s has the same data, config and code; --force: training again",
            version.name, version.version,
        )  # fmt: skip
        return None
    stage_log.info(
        "unchanged %s version %s was trained on the same data, config and code: nothing trained "
        "(--force trains again)",
        version.name, version.version,
    )  # fmt: skip
    return unchanged_summary(context.header(), version, weights_sha256, context.rerun)
