"""Offline safety evaluation: metrics with intervals, fairness, robustness, the gate and the model card."""
