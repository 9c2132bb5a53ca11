"""The table type and feature encoding from public bounds: pure functions on frames."""
