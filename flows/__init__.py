"""Prefect flows: each composes tasks and reads like a table of contents."""
