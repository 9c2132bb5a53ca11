"""Unit tests: pure and fast; no Prefect, no servers."""
