"""`python -m guardflow`: the same as the `guardflow` command."""

from guardflow.cli import entrypoint

entrypoint()
