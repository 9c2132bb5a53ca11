"""Poisoning detection: per-row detectors and the scan that combines them."""
