"""One flow run: its context (stages, lineage) and its summary record."""
