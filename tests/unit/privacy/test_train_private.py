"""DP training: the spent epsilon stays within the target, the model is Opacus-compatible, weights are safetensors
and training is reproducible from its seed. Runs on a 2,000-row slice of adult.data for 2 epochs to stay fast."""

import copy
import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from opacus.validators import ModuleValidator

from guardflow.data.encode_features import encode_features
from guardflow.data.table import label_vector, typed_frame
from guardflow.io.datasets import read_split
from guardflow.privacy.network import build_mlp, load_weights, predict_proba, save_weights
from guardflow.privacy.train_private import TrainedModel, _split_for_calibration, train_private

# Both warnings come from inside Opacus' PRV accountant, not from the epsilon guardflow reports: it sizes its
# domain with an RDP bound over Opacus' own default orders (and warns when the largest is optimal), and it takes
# log(1 - q), which is -inf for the calibration's sample rate of 1 on this slice.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha:UserWarning"),
    pytest.mark.filterwarnings("ignore:divide by zero encountered in log:RuntimeWarning"),
]

# 2,000 rows: the 200 calibration rows fit in one Poisson batch, which keeps the PRV accountant's noise search
# (most of the training time) short; at 3,000 rows one training run takes ~14 s instead of ~4 s.
SLICE_ROWS = 2000


@pytest.fixture(scope="module")
def adult_slice(adult_settings) -> tuple[np.ndarray, np.ndarray]:
    dataset = adult_settings.dataset
    frame = typed_frame(read_split(dataset, "train").rows.head(SLICE_ROWS), dataset)
    return encode_features(frame, dataset), label_vector(frame, dataset).to_numpy()


@pytest.fixture(scope="module")
def quick_privacy(adult_settings):
    return adult_settings.privacy.model_copy(update={"epochs": 2})


@pytest.fixture(scope="module")
def trained(adult_slice, quick_privacy, adult_settings) -> TrainedModel:
    features, labels = adult_slice
    return train_private(features, labels, quick_privacy, adult_settings.model)


def _weights_sha256(model: torch.nn.Module, folder: Path, name: str) -> str:
    return save_weights(model, folder / f"{name}.safetensors")


def test_spent_epsilon_is_within_target_and_the_report_is_complete(trained, quick_privacy) -> None:
    # given a model trained on 2,000 rows with the config's privacy settings
    report = trained.privacy
    # then the spent epsilon is within the target and every parameter of the mechanism is recorded
    assert report.epsilon <= quick_privacy.target_epsilon + 1e-6, (
        f"spent epsilon {report.epsilon} must not exceed the target {quick_privacy.target_epsilon}"
    )
    assert report.calibration_epsilon <= quick_privacy.target_epsilon + 1e-6, (
        "calibration stays within the target"
    )
    assert report.epsilon >= report.calibration_epsilon, "disjoint rows: the run spends the larger of the two"
    assert report.delta == quick_privacy.delta, "the report states the delta it was accounted for"
    assert report.noise_multiplier > 0, "DP-SGD must add noise"
    assert 0 < report.sample_rate <= 1, f"a Poisson sample rate is a probability, got {report.sample_rate}"
    assert report.steps > 0, "at least one noisy step was taken"
    assert report.accountant == quick_privacy.accountant, (
        "the accountant that calibrated the noise is reported"
    )
    assert report.epochs == 2, "the epochs of the run are recorded"
    assert 0.07 * SLICE_ROWS < report.calibration_rows < 0.13 * SLICE_ROWS, (
        "about 10% held out for Platt scaling"
    )
    assert report.training_rows + report.calibration_rows == SLICE_ROWS, "the two shares cover every row once"


@pytest.mark.parametrize("hidden_units", [[64], [1], [128, 64], [32, 32, 32]])
def test_every_configurable_mlp_is_valid_for_opacus(hidden_units) -> None:
    # given an MLP of the shape the config may ask for
    model = build_mlp(input_width=20, hidden_units=hidden_units)
    # when Opacus checks it for DP-SGD
    errors = ModuleValidator.validate(model, strict=False)
    # then it has no layer that mixes samples (BatchNorm) or is otherwise unsupported
    assert errors == [], f"Opacus rejects hidden_units={hidden_units}: {errors}"
    assert not any(isinstance(layer, torch.nn.modules.batchnorm._BatchNorm) for layer in model.modules()), (
        "no BatchNorm anywhere in the MLP"
    )


def test_trained_model_is_valid_for_opacus(trained) -> None:
    # given the exported model, put back in training mode (Opacus only validates models it could train)
    model = copy.deepcopy(trained.model).train()
    # then Opacus would accept it again and it is the plain module, not the Opacus wrapper
    assert ModuleValidator.validate(model, strict=False) == [], "the trained model must stay DP-compatible"
    assert not hasattr(trained.model, "_module"), (
        "train_private must return the plain module, not the Opacus wrapper"
    )


def test_weights_round_trip_through_safetensors_and_are_not_a_pickle(trained, adult_slice, tmp_path) -> None:
    # given the trained model saved to a file
    features, _ = adult_slice
    path = tmp_path / "model.safetensors"
    sha256 = save_weights(trained.model, path)
    # when the file is loaded back into a fresh MLP
    loaded = load_weights(path, trained.input_width, list(trained.hidden_units))
    # then predictions are identical and the file is a safetensors header plus raw tensors
    assert torch.equal(predict_proba(loaded, features), predict_proba(trained.model, features)), (
        "reloaded weights must give identical predictions"
    )
    content = path.read_bytes()
    assert sha256 == hashlib.sha256(content).hexdigest(), (
        "save_weights returns the sha256 of the file it wrote"
    )
    assert not content.startswith((b"\x80", b"PK")), "weights must not be a pickle or a torch zip archive"
    (header_length,) = struct.unpack("<Q", content[:8])
    header = json.loads(content[8 : 8 + header_length])
    tensor_names = {name for name in header if name != "__metadata__"}
    assert tensor_names == set(trained.model.state_dict()), (
        "the JSON header names exactly the state dict's tensors"
    )


def test_same_seed_gives_same_weights_and_another_seed_does_not(
    trained, adult_slice, quick_privacy, adult_settings, tmp_path
) -> None:
    # given the module's model (seed 0), and the same rows trained again with seed 0 and with seed 1
    features, labels = adult_slice
    assert adult_settings.model.seed == 0, "the module's model was trained with seed 0"
    runs = {
        seed: train_private(
            features, labels, quick_privacy, adult_settings.model.model_copy(update={"seed": seed})
        )
        for seed in (0, 1)
    }
    # when each run's weights are saved
    digests = {
        "first": _weights_sha256(trained.model, tmp_path, "first"),
        "again": _weights_sha256(runs[0].model, tmp_path, "again"),
        "other": _weights_sha256(runs[1].model, tmp_path, "other"),
    }
    # then the seed alone decides the weights
    assert digests["first"] == digests["again"], "two runs with the same seed must give the same weights"
    assert digests["first"] != digests["other"], "a different seed must give different weights"


def test_calibration_fraction_zero_turns_calibration_off(adult_slice, quick_privacy, adult_settings) -> None:
    # given calibration turned off
    features, labels = adult_slice
    privacy = quick_privacy.model_copy(update={"calibration_fraction": 0.0})
    # when trained
    report = train_private(features, labels, privacy, adult_settings.model).privacy
    # then no row is held out and nothing is spent on calibration
    assert report.calibration_rows == 0, "no calibration rows without calibration"
    assert report.calibration_epsilon == 0.0, "no calibration epsilon without calibration"
    assert report.training_rows == SLICE_ROWS, "every row trains the MLP"
    assert 0 < report.epsilon <= privacy.target_epsilon + 1e-6, "the MLP alone spends within the target"


def test_adding_or_removing_a_row_does_not_move_other_rows_between_shares() -> None:
    # given 3,000 random rows, the same rows plus one, and the same rows with the first one removed
    rows = np.random.default_rng(0).random((3001, 5)).astype("float32")
    labels = (rows[:, 0] > 0.5).astype("float32")
    _, held_out = _split_for_calibration(rows[:3000], labels[:3000], 0.1, seed=0)
    _, held_out_plus = _split_for_calibration(rows, labels, 0.1, seed=0)
    _, held_out_minus = _split_for_calibration(rows[1:3000], labels[1:3000], 0.1, seed=0)
    # then no existing row changes side: each row's side depends on that row alone
    assert np.array_equal(held_out, held_out_plus[held_out_plus < 3000]), "adding a row moved other rows"
    assert np.array_equal(held_out[held_out > 0], held_out_minus + 1), "removing a row moved other rows"
    assert 0.07 < len(held_out) / 3000 < 0.13, f"about 10% held out, got {len(held_out) / 3000:.3f}"


def test_label_noise_rows_join_the_calibration_on_their_hash_side_and_never_train(
    adult_slice, quick_privacy, adult_settings
) -> None:
    # given the slice split into rows to train on and 400 rows the scan flagged for label noise alone
    features, labels = adult_slice
    kept, noisy = (features[:-400], labels[:-400]), (features[-400:], labels[-400:])
    _, own_side = _split_for_calibration(kept[0], kept[1], quick_privacy.calibration_fraction, seed=0)
    _, noisy_side = _split_for_calibration(noisy[0], noisy[1], quick_privacy.calibration_fraction, seed=0)
    # when trained with and without those rows offered for calibration
    model = adult_settings.model.model_copy(update={"seed": 0})
    plain = train_private(kept[0], kept[1], quick_privacy, model).privacy
    offered = train_private(kept[0], kept[1], quick_privacy, model, calibration_extra=noisy).privacy
    # then only the noisy rows their own hash sends to calibration are added there, and none trains the MLP
    assert 0 < len(noisy_side) < 400, "some of the 400 rows fall on each side"
    assert plain.calibration_rows == len(own_side), "the calibration share is decided by each row's hash"
    assert offered.calibration_rows == len(own_side) + len(noisy_side), (
        f"{len(noisy_side)} noisy rows calibrate: {offered.calibration_rows} vs {plain.calibration_rows}"
    )
    assert offered.training_rows == plain.training_rows == SLICE_ROWS - 400 - len(own_side), (
        "the noisy rows never train the MLP"
    )
