"""Bounded retries with backoff for outages (etcd, the Kubernetes API): retried, then a clear error - never a hang.

The budget is ``DEFAULT_BUDGET`` seconds (30, about what ExternalDNS's pod restart loop gives), overridable
with the environment variable ``DNSSYNC_RETRY_SECONDS`` (operations and tests tune it; it is not a flag).

Which etcd errors are transient is the client layer's rule (:func:`skydns.etcd.is_transient_error`): connection
failures and timeouts, ``UNAVAILABLE`` (which is how etcd says "no leader", "leader changed", "request timed out"
while it elects), ``DEADLINE_EXCEEDED``, and the timing errors etcd sends as ``UNKNOWN`` ("context deadline
exceeded", "raft proposal dropped") or ``RESOURCE_EXHAUSTED`` ("too many requests"), whether raw gRPC errors or
wrapped by aetcd. Every write is a guarded transaction, so retrying one whose answer was lost cannot write twice:
its compare fails and the writer re-reads. Anything else (refused credentials, a full database, a bug) is raised
at once.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_delay, wait_exponential

from skydns.etcd import is_transient_error

T = TypeVar("T")
DEFAULT_BUDGET = 30.0
log = structlog.get_logger()


class Unavailable(Exception):
    """A backend stayed unreachable for the whole retry budget; the message says which and why."""


def budget() -> float:
    raw = os.environ.get("DNSSYNC_RETRY_SECONDS", "")
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_BUDGET
    except ValueError:
        return DEFAULT_BUDGET


def is_transient_etcd_error(exc: BaseException) -> bool:
    return is_transient_error(exc)


def describe(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def retry_policy(what: str, seconds: float, transient: Callable[[BaseException], bool],
                 describe_error: Callable[[BaseException], str] = describe) -> dict[str, Any]:
    """tenacity arguments (for ``Retrying`` and ``AsyncRetrying``): retry ``transient`` errors with exponential
    backoff for ``seconds``, log each retry naming ``what``, re-raise the last error."""

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("retrying", what=what, attempt=state.attempt_number, error=describe_error(exc) if exc else "")

    return {"stop": stop_after_delay(seconds), "reraise": True, "wait": wait_exponential(multiplier=0.2, max=5),
            "retry": retry_if_exception(transient), "before_sleep": before_sleep}


async def retry_async(call: Callable[[], Awaitable[T]], what: str,
                      transient: Callable[[BaseException], bool] = is_transient_etcd_error,
                      seconds: float | None = None) -> T:
    """Run ``call`` until it succeeds, retrying transient errors with backoff for ``seconds``; else Unavailable."""
    seconds = budget() if seconds is None else seconds
    try:
        async for attempt in AsyncRetrying(**retry_policy(what, seconds, transient)):
            with attempt:
                return await call()
    except Exception as exc:
        if transient(exc):
            raise Unavailable(f"{what}: still unreachable after {seconds:g} s of retries ({describe(exc)})") from exc
        raise
    raise AssertionError("unreachable")  # pragma: no cover
