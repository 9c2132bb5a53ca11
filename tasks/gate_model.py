"""Judge the candidate against the policy's thresholds."""

from prefect import task
from prefect.cache_policies import NO_CACHE

from guardflow.decide_gate import ChampionComparison, GateDecision, decide_gate
from guardflow.evaluate_safety import Evaluation
from guardflow.lineage_facets import gate_facet
from guardflow.run_context import RunContext
from tasks.stage_log import stage_log
from tasks.train_model import SavedModel


@task(name="gate", cache_policy=NO_CACHE)
def gate_model(
    context: RunContext, evaluation: Evaluation, saved: SavedModel, comparison: ChampionComparison | None
) -> GateDecision:
    with context.stage("gate", inputs=[]) as stage:
        decision = decide_gate(evaluation, context.settings.gate, saved.trained.privacy.epsilon, comparison)
        stage.run_facets.update(gate_facet(decision))
    stage_log.info("gate      %s", "PASSED" if decision.passed else "REJECTED")
    for line in decision.lines:
        stage_log.info("            %s", line.describe())
    return decision
