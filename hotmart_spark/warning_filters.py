"""Python keeps one set of warning filters per process: stages running side by side in the
pipeline take turns at changing them, or one stage's filters would decide what happens to
the other's warnings (forecast silences statsmodels' warnings; drivers turns some into
errors). Libraries' own catch_warnings blocks in other threads do not take turns: leaving
one restores the filters it saved, so nothing may depend on a warning reaching its block
(forecast reads convergence off the fits)."""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator
from typing import Any

_TURN = threading.Lock()


@contextlib.contextmanager
def catch_warnings(**kwargs: Any) -> Iterator[list[warnings.WarningMessage] | None]:
    """warnings.catch_warnings(**kwargs), in one thread at a time."""
    with _TURN, warnings.catch_warnings(**kwargs) as caught:
        yield caught
