"""The options every guardflow task shares, in one place."""

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE

P = ParamSpec("P")
R = TypeVar("R")


def stage_task(name: str, *, holds_raw_rows: bool = False) -> Callable[[Callable[P, R]], Task[P, R]]:
    """A Prefect task named `name`, never cached: every run re-reads its inputs and repeats its checks (a cached
    verdict on a file that changed would be a wrong verdict). `holds_raw_rows`: its result carries data rows as
    read, so it is never written to Prefect's result storage (it may hold personal data)."""
    return task(name=name, cache_policy=NO_CACHE, persist_result=False if holds_raw_rows else None)
