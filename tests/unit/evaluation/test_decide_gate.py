"""The new gate lines where a reviewer reads them: the lineage gate facet (valid against its schema), the model
card (small groups, per-group and differential lines) and the flat describe() text of summary.json."""

import numpy as np
from openlineage.client.serde import Serde

from guardflow.evaluation.compare_champion import ChampionComparison, compare_groups
from guardflow.evaluation.decide_gate import decide_gate
from guardflow.evaluation.differential import check_differential
from guardflow.evaluation.model_card import render_model_card
from guardflow.lineage.facets import gate_facet
from guardflow.privacy.train_private import PrivacyReport
from tests.lineage_validation import load_spec
from tests.unit.evaluation.conftest import evaluation_of, score_by_relationship

PRIVACY = PrivacyReport(
    epsilon=1.0, delta=1e-5, accountant="prv", epsilon_rdp=1.2, noise_multiplier=1.0, max_grad_norm=1.0,
    sample_rate=0.01, steps=100, epochs=5, empty_batches=0, training_rows=900, calibration_rows=100,
    calibration_epsilon=0.9,
)  # fmt: skip
ROWS = {"rows_in": 6000, "rows_accepted": 6000, "rows_quarantined": 0, "quarantined_by_contract": 0,
        "quarantined_by_scan": 0}  # fmt: skip


def _decision(adult_settings, adult_test_rows):
    """A candidate that pushes wives' predictions up by 0.4 and halves Black people's positive predictions."""
    frame, labels = adult_test_rows
    dataset, gate = adult_settings.dataset, adult_settings.gate
    champion = score_by_relationship(frame)
    candidate = champion.copy()
    wives = (frame["relationship"] == "Wife").to_numpy()
    candidate[wives] = np.clip(candidate[wives] + 0.4, 0, 1)
    black = np.nonzero((frame["race"] == "Black").to_numpy() & (champion >= 0.5))[0]
    candidate[black[::2]] = 0.05
    evaluation = evaluation_of(candidate, labels, frame[dataset.sensitive])
    comparison = ChampionComparison(
        "4",
        {"accuracy": 0.8, "roc_auc": 0.8},
        {"accuracy": (0.8, 0.8), "roc_auc": (0.8, 0.8)},
        groups=compare_groups(candidate, champion, labels, frame[dataset.sensitive]),
        differential=(
            check_differential(candidate, champion, frame, dataset, gate.differential, "test rows"),
        ),
    )
    return evaluation, decide_gate(evaluation, gate, 1.0, comparison)


def test_the_gate_facet_carries_every_new_line_and_matches_its_schema(
    adult_settings, adult_test_rows
) -> None:
    # given a decision with per-group, differential, waived small-group lines
    _, decision = _decision(adult_settings, adult_test_rows)
    # when turned into the lineage facet
    facet = Serde.to_dict(gate_facet(decision)["guardflow_gate"])
    # then it validates against the facet schema and holds every line with its status, detail and rows
    spec = load_spec()
    schema = {
        "$ref": "https://guardflow.dev/spec/facets/1-0-0/GuardflowGateRunFacet.json#/$defs/GuardflowGateRunFacet"
    }
    errors = [error.message for error in spec.validator(schema).iter_errors(facet)]
    assert not errors, errors
    lines = {line["name"]: line for line in facet["lines"]}
    assert len(lines) == len(decision.lines), "every line reaches the facet"
    assert lines["differential[test rows]"]["status"] == "FAIL", lines["differential[test rows]"]
    assert "relationship=Wife" in lines["differential[test rows]"]["detail"], "the slice is named"
    assert lines["no_regression[race=Black, selection_rate]"]["judgedOn"] == "test rows"
    assert lines["min_group_size[race=Other]"]["status"] == "WAIVED", "small groups are waived, not dropped"
    assert lines["differential[training rows]"]["waived"] == "training rows not scored", (
        "a check not run says so"
    )


def test_the_card_lists_small_groups_and_every_line(adult_settings, adult_test_rows) -> None:
    # given the same decision / when the model card is rendered
    evaluation, decision = _decision(adult_settings, adult_test_rows)
    card = render_model_card(adult_settings, "0" * 64, ROWS, {}, PRIVACY, evaluation, decision)
    # then the small groups are listed with their sizes, and each new line appears with its verdict
    assert "Groups too small to judge" in card and "race Other: tpr on" in card, "small groups are reported"
    assert "- FAIL differential[test rows]" in card, "the differential line is in the card"
    assert "- FAIL no_regression[race=Black, tpr]" in card, "the harmed group is named in the card"
    assert "- WAIVED min_group_size[race=Amer-Indian-Eskimo]" in card, "waived lines are in the card"
    assert "REJECTED" in card, "the verdict follows the failed lines"
