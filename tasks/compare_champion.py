"""Score the current champion on the candidate's held-out rows, so the gate can hold the candidate to it."""

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from guardflow.data.table import Table, label_vector, labelled_rows
from guardflow.evaluation.decide_gate import ChampionComparison
from guardflow.evaluation.evaluate_safety import Evaluation, champion_figures
from guardflow.io import registry
from guardflow.io.lineage import file_dataset
from guardflow.run.run_context import RunContext
from tasks.stage_log import stage_log


@task(name="compare-champion", cache_policy=NO_CACHE)
def compare_champion(context: RunContext, test: Table, evaluation: Evaluation) -> ChampionComparison | None:
    """The champion's accuracy, ROC AUC and ECE on the same rows (None when there is no champion yet)."""
    settings = context.settings
    dataset = settings.dataset
    with context.stage("compare_champion", inputs=[file_dataset(test.path, sha256=test.sha256)]):
        registry.track_dataset(context.home, dataset.id)
        champion = registry.champion_version(settings.registry.model_name)
        if champion is None:
            stage_log.info("champion  none yet: the gate judges on absolute lines only")
            return None
        held_out = labelled_rows(test.rows, dataset)
        predictions = registry.load_model(champion.model_uri).predict(held_out[list(dataset.features)])
        probabilities = np.asarray(pd.DataFrame(predictions).to_numpy(), dtype="float64").ravel()
        figures = champion_figures(probabilities, label_vector(held_out, dataset).to_numpy())
        comparison = ChampionComparison(
            champion_version=champion.version,
            champion=figures,
            candidate_interval={
                metric: (evaluation.intervals[metric].low, evaluation.intervals[metric].high)
                for metric in settings.gate.max_regression
            },
        )
    stage_log.info(
        "champion  version %s on the same rows: %s",
        champion.version, ", ".join(f"{name} {value:.4f}" for name, value in figures.items()),
    )  # fmt: skip
    return comparison
