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
    failed = [line for line in decision.lines if not line.passed]
    waived = sum(line.waived is not None for line in decision.lines)
    stage_log.info(
        "gate      %s: %d lines, %d failed, %d waived (every line in the summary below)",
        "PASSED" if decision.passed else "REJECTED", len(decision.lines), len(failed), waived,
    )  # fmt: skip
    for line in failed:
        stage_log.info("            %s", line.describe())
    return decision
