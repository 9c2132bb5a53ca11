"""guardflow's own OpenLineage facets: they validate against the schemas shipped in the package."""

from __future__ import annotations

import json


def test_guardflow_facets_validate_and_a_broken_one_is_rejected() -> None:
    # given guardflow's own facets, serialised as the client does
    from openlineage.client.serde import Serde

    from guardflow.lineage.facets import GuardflowTrainingRunFacet, prefect_facet
    from tests.lineage_validation import facet_problems

    training = GuardflowTrainingRunFacet(
        epsilon=0.99, delta=1e-5, accountant="prv", epsilonRdp=1.1, noiseMultiplier=1.4, maxGradNorm=1.0,
        sampleRate=0.017, steps=280, epochs=5, trainingRows=29000, calibrationRows=3000, calibrationEpsilon=0.99,
    )  # fmt: skip
    as_json = json.loads(Serde.to_json(training))
    prefect = json.loads(Serde.to_json(prefect_facet("0b6e-run", "safety-train")["guardflow_prefect"]))
    # then they validate against the schemas shipped in the package
    assert facet_problems("guardflow_training", as_json) == [], "the training facet must validate"
    assert facet_problems("guardflow_prefect", prefect) == [], "the Prefect facet must validate"
    # and a training facet with a negative epsilon or an unknown accountant does not
    assert facet_problems("guardflow_training", {**as_json, "epsilon": -1.0}), (
        "negative epsilon must be rejected"
    )
    assert facet_problems("guardflow_training", {**as_json, "accountant": "guess"}), (
        "unknown accountant rejected"
    )
