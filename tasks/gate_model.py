"""Judge the candidate against the policy's thresholds."""

from guardflow.evaluation.decide_gate import ChampionComparison, GateDecision, decide_gate
from guardflow.evaluation.evaluate_safety import Evaluation
from guardflow.lineage.facets import gate_facet
from guardflow.privacy.train_private import SavedModel
from guardflow.run.run_context import RunContext
from tasks.stage_log import stage_log
from tasks.stage_task import stage_task


@stage_task("gate")
def gate_model(
    context: RunContext,
    evaluation: Evaluation,
    saved: SavedModel,
    comparison: ChampionComparison | None,
    window: ChampionComparison | None = None,
    test_rows: str | None = None,
) -> GateDecision:
    """`window`: the champion on a drift retrain's window (no-regression lines there too); `test_rows`: the
    rows the other lines were judged on, named on each line."""
    with context.stage("gate", inputs=[]) as stage:
        decision = decide_gate(
            evaluation, context.settings.gate, saved.trained.privacy.epsilon, comparison, window, test_rows
        )
        stage.run_facets.update(gate_facet(decision))
    stage_log.info("gate      %s", "PASSED" if decision.passed else "REJECTED")
    for line in decision.lines:
        stage_log.info("            %s", line.describe())
    return decision
