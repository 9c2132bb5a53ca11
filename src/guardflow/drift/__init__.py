"""Drift detection against the champion's data and the guard on drift-triggered retrains."""
