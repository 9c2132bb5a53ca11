"""The privacy-budget rule and its ledger in the tracking store; accountant figures against published values."""

from __future__ import annotations

import warnings

import pytest
import torch
from opacus import PrivacyEngine
from opacus.accountants import RDPAccountant
from opacus.accountants.utils import get_noise_multiplier
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from guardflow.errors import BudgetError
from guardflow.privacy.network import build_mlp
from guardflow.privacy.privacy_budget import Spend, check_budget, summarize_budget

SOURCE_A, SOURCE_B = "a" * 64, "b" * 64


def _spend(source: str, epsilon: float) -> Spend:
    return Spend("adult", source, epsilon, 1e-5, "train", "2026-11-27T00:00:00+00:00", "/runs/x")


def test_budget_sums_every_spend_of_a_source() -> None:
    spends = [_spend(SOURCE_A, 1.0), _spend(SOURCE_A, 0.5), _spend(SOURCE_B, 2.0)]
    budget = summarize_budget("adult", SOURCE_A, spends, lifetime=3.0)
    assert (budget.spent, budget.runs, budget.remaining) == (1.5, 2, 1.5), f"basic composition, got {budget}"


def test_a_run_that_would_pass_the_lifetime_budget_is_refused_with_one_line() -> None:
    # given a source that has spent 2.5 of 3.0
    budgets = [summarize_budget("adult", SOURCE_A, [_spend(SOURCE_A, 2.5)], lifetime=3.0)]
    # when a run of epsilon 1 asks / then it is refused, naming the dataset and the figures
    with pytest.raises(BudgetError) as caught:
        check_budget(budgets, epsilon=1.0)
    message = str(caught.value)
    assert "\n" not in message and "adult" in message and "2.500 of 3.000" in message, message
    check_budget(budgets, epsilon=0.5)  # exactly reaching the lifetime is allowed


def test_every_source_of_a_retrain_must_have_room() -> None:
    spends = [_spend(SOURCE_A, 0.5), _spend(SOURCE_B, 2.9)]
    budgets = [summarize_budget("adult", source, spends, 3.0) for source in (SOURCE_A, SOURCE_B)]
    with pytest.raises(BudgetError, match="bbbbbbbbbbbb"):
        check_budget(budgets, epsilon=1.0)


def test_rdp_accountant_matches_the_published_epsilon() -> None:
    # Abadi et al. 2016 / TF Privacy's reference: sigma 1.5, q 0.04, 2250 steps -> epsilon 7.32911 at 1e-5
    accountant = RDPAccountant()
    accountant.history = [(1.5, 0.04, 2250)]
    assert accountant.get_epsilon(1e-5) == pytest.approx(7.32911, abs=1e-4), (
        "RDP epsilon off the golden value"
    )


def test_noise_multiplier_search_reaches_its_target() -> None:
    # The issue quotes sigma 1.4253 for epsilon 8 (delta 1e-5, q 0.04, 90 epochs). Opacus 1.6 gives 1.416 with the
    # improved RDP-to-DP conversion, and sigma 1.4253 spends 7.92 there: we pin Opacus' value and check that it
    # spends within the search tolerance of epsilon 8, and that 1.4253 is the more conservative of the two.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sigma = get_noise_multiplier(
            target_epsilon=8, target_delta=1e-5, sample_rate=0.04, epochs=90, accountant="rdp"
        )
    accountant = RDPAccountant()
    accountant.history = [(sigma, 0.04, 2250)]
    assert sigma == pytest.approx(1.416, abs=1e-3), f"noise multiplier moved: {sigma}"
    assert 7.99 <= accountant.get_epsilon(1e-5) <= 8.0, "the found sigma spends epsilon 8 within tolerance"
    accountant.history = [(1.4253, 0.04, 2250)]
    assert accountant.get_epsilon(1e-5) < 8.0, "the published sigma is at least as private"


def test_sigma_zero_without_clipping_equals_plain_training() -> None:
    # given the same MLP, data and batches
    torch.manual_seed(0)
    features, labels = torch.rand(256, 6), (torch.rand(256) > 0.5).float()
    plain = build_mlp(6, [8])
    private = build_mlp(6, [8])
    private.load_state_dict(plain.state_dict())
    loss_function = nn.BCEWithLogitsLoss()
    # when one trains with plain SGD and the other with DP-SGD at noise 0 and a clipping norm nothing reaches
    plain_optimizer = torch.optim.SGD(plain.parameters(), lr=0.5)
    for start in range(0, 256, 64):
        plain_optimizer.zero_grad()
        loss_function(plain(features[start : start + 64]).squeeze(-1), labels[start : start + 64]).backward()
        plain_optimizer.step()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, optimizer, loader = PrivacyEngine().make_private(
            module=private,
            optimizer=torch.optim.SGD(private.parameters(), lr=0.5),
            data_loader=DataLoader(TensorDataset(features, labels), batch_size=64),
            noise_multiplier=0.0,
            max_grad_norm=1e9,
            poisson_sampling=False,
        )
        for batch_features, batch_labels in loader:
            optimizer.zero_grad()
            loss_function(model(batch_features).squeeze(-1), batch_labels).backward()
            optimizer.step()
    # then both end with the same weights
    trained = model.to_standard_module().state_dict()
    for name, tensor in plain.state_dict().items():
        assert torch.allclose(tensor, trained[name], atol=1e-5), f"{name} differs between DP(0) and plain SGD"
