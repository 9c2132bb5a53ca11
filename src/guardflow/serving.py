"""The registered model as an MLflow pyfunc, logged as code so that nothing in it is pickled.

MLflow runs this file (models from code) when the model is logged and again each time it is loaded. The
weights come from safetensors and the encoding from the public feature settings in the spec, so loading
works with `MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false`.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

from guardflow.data.encode_features import encode_features, feature_layout
from guardflow.data.table import typed_frame
from guardflow.privacy.network import load_weights, predict_proba
from guardflow.settings import DatasetSettings


class GuardflowClassifier(PythonModel):
    """Raw feature rows in (as read or typed), the probability of the positive class out, one per row."""

    def load_context(self, context: PythonModelContext) -> None:
        spec = json.loads(Path(context.artifacts["spec"]).read_text(encoding="utf-8"))
        # JSON validation: the settings are strict, and the spec holds paths as strings.
        self._dataset = DatasetSettings.model_validate_json(json.dumps(spec["dataset"]))
        width = feature_layout(self._dataset).width
        if width != spec["input_width"]:
            # Fail at load, not with a shape error in the middle of a batch.
            raise ValueError(
                f"the spec's features encode to {width} columns but input_width is {spec['input_width']}"
            )
        self._model = load_weights(Path(context.artifacts["weights"]), width, spec["hidden_units"])

    def predict(self, context: PythonModelContext, model_input: pd.DataFrame, params=None) -> np.ndarray:
        # Numeric columns may arrive as text (as read from CSV): the same coercion as training applies.
        features = encode_features(typed_frame(model_input, self._dataset), self._dataset)
        return predict_proba(self._model, features).numpy()


mlflow.models.set_model(GuardflowClassifier())
