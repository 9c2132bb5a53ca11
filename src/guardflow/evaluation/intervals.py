"""Bootstrap machinery: resample counts and percentile intervals.

A resample is a vector of row counts (how often each row is drawn). Every metric in `metrics` takes such a
matrix of counts as row weights, so a bootstrap is the point metric evaluated under (resamples, rows) weights:
one implementation serves the point estimate (weights of one) and its interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BOOTSTRAP_RESAMPLES = 200


@dataclass(frozen=True)
class Interval:
    """A 95% percentile bootstrap interval."""

    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    @property
    def width(self) -> float:
        return self.high - self.low


def resample_counts(rows: int, resamples: int, seed: int) -> np.ndarray:
    """How often each row is drawn in each resample: a (resamples, rows) matrix of counts summing to `rows`."""
    generator = np.random.default_rng(seed)
    drawn = generator.integers(0, rows, size=(resamples, rows))
    drawn += (np.arange(resamples) * rows)[:, None]
    return np.bincount(drawn.ravel(), minlength=resamples * rows).reshape(resamples, rows).astype("float64")


def unit_weights(rows: int) -> np.ndarray:
    """The weights of the rows as they are: one resample that draws every row once."""
    return np.ones((1, rows))


def percentile_interval(samples: np.ndarray) -> Interval:
    """The 2.5th and 97.5th percentiles of the resampled values (NaN resamples left out)."""
    if np.isnan(samples).all():
        return Interval(float("nan"), float("nan"))
    low, high = np.nanpercentile(samples, [2.5, 97.5])
    return Interval(float(low), float(high))


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)
