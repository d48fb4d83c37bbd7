"""Retries with exponential backoff and full jitter, for transient failures only.

Transient means the request may succeed if sent again unchanged: the connection failed
(status 0), the server failed (5xx) or asked us to slow down (429). A 4xx other than 429
says the request itself is wrong and is never repeated.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from imm.client import ApiError

T = TypeVar("T")


class Cancelled(Exception):
    """The run was interrupted; raised inside workers to stop them between chunks."""


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, ApiError) and (exc.status == 0 or exc.status == 429 or exc.status >= 500)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    base: float = 0.5  # seconds before the second attempt (on average base/2, jittered)
    cap: float = 30.0

    def delay(self, attempt: int) -> float:
        """Full jitter (AWS's recommendation): spreads clients that failed together."""
        return random.uniform(0, min(self.cap, self.base * 2**attempt))

    def call(
        self,
        fn: Callable[[], T],
        cancel: threading.Event,
        on_retry: Callable[[int, BaseException, float], None] | None = None,
    ) -> T:
        for attempt in range(self.attempts):
            if cancel.is_set():
                raise Cancelled()
            try:
                return fn()
            except Exception as exc:
                if not is_transient(exc) or attempt == self.attempts - 1:
                    raise
                wait = self.delay(attempt)
                if on_retry:
                    on_retry(attempt + 1, exc, wait)
                if cancel.wait(wait):
                    raise Cancelled() from None
        raise AssertionError("unreachable")
