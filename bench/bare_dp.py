"""The baseline for `bench/pipeline.py`: the same DP model as `guardflow train`, with no safety stages.

No Prefect, no contract, no poisoning scan, no MLflow, no lineage, no gate: read the configured train and
test files, encode them from the config's public bounds, train with `train_private` (same settings, same
seed) and score the test rows. Run as a subprocess, so its wall time includes interpreter start and imports
just as the pipeline's does. Prints one JSON line with its figures on stdout.

    python bench/bare_dp.py --config configs/adult.yaml
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

STARTED = time.perf_counter()  # before the heavy imports, so `import_seconds` can include them

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "adult.yaml"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="guardflow YAML config")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Train and score the bare DP model; print its figures and where its time went as one JSON line."""
    args = parse_args(argv)
    # Imported here, not at the top, so their cost is measured (torch and opacus dominate it).
    import numpy as np

    from guardflow.data.encode_features import encode_features
    from guardflow.data.table import label_vector, typed_frame
    from guardflow.io.datasets import read_split
    from guardflow.privacy.network import predict_proba
    from guardflow.privacy.train_private import train_private
    from guardflow.settings import load_settings

    imported = time.perf_counter()
    settings = load_settings(args.config)
    dataset = settings.dataset
    known_labels = [dataset.label.positive, dataset.label.negative]
    train = typed_frame(read_split(dataset, "train").rows, dataset)
    test = typed_frame(read_split(dataset, "test").rows, dataset)
    # The only filtering: rows whose label is neither class cannot be trained or scored on.
    train = train[train[dataset.label.column].isin(known_labels)]
    test = test[test[dataset.label.column].isin(known_labels)]
    loaded = time.perf_counter()

    trained = train_private(
        encode_features(train, dataset),
        label_vector(train, dataset).to_numpy(),
        settings.privacy,
        settings.model,
    )
    test_labels = label_vector(test, dataset).to_numpy()
    probabilities = predict_proba(trained.model, encode_features(test, dataset)).numpy()
    accuracy = float(np.mean((probabilities >= 0.5) == test_labels))
    finished = time.perf_counter()

    figures = {
        "accuracy": accuracy,
        "epsilon": trained.privacy.epsilon,
        "train_rows": len(train),
        "test_rows": len(test),
        "import_seconds": round(imported - STARTED, 3),
        "load_seconds": round(loaded - imported, 3),
        "train_seconds": round(trained.seconds, 3),
        "total_seconds": round(finished - STARTED, 3),
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
