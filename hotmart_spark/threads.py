"""The one way the project runs work side by side: threads that carry the context of the
thread that submitted the work.

Spark's scheduler runs jobs from several driver threads at once, and small jobs leave cores
idle (a shuffle of a producer-sized table is one task), so the pipeline runs stages that do
not read each other's output side by side, and a stage runs its independent tables side by
side. A task submitted here runs with the submitter's Spark local properties (the job group
Spark's UI and event log show for the stage) and its context variables (which tables the
stage has written so far)."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from pyspark import inheritable_thread_target
from pyspark.sql import SparkSession

T = TypeVar("T")


class Pool(ThreadPoolExecutor):
    """A thread pool whose tasks run as if in the thread that submitted them."""

    def __init__(self, workers: int, name: str, spark: SparkSession | None = None) -> None:
        super().__init__(workers, name)
        self._spark = spark

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        # A context is entered by one thread at a time: each task gets its own copy.
        context = contextvars.copy_context()
        target: Callable[..., T] = context.run
        if self._spark is not None:
            # Captures the local properties now, in the submitting thread.
            target = inheritable_thread_target(self._spark)(target)
        return super().submit(target, fn, *args, **kwargs)
