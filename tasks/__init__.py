"""Thin Prefect tasks over the guardflow library: lineage bracket, run logging, retries. No logic of their own."""
