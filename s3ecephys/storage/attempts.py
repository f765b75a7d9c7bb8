"""One request carried to its end within bounded time: first byte, stalls, retries, a budget.

Nothing here knows which client sends the request: a transport wraps the wait for an answer's head
in :func:`first_byte`, each wait for more of its body in :func:`next_bytes`, and the whole attempt
in :func:`with_retries`, which sorts failures into final and transient (through the transport's
``translate``), backs off, and gives up when the retries or the time budget are spent, with an
error that lists every attempt. What a retried attempt asks for (only the missing bytes) is the
transport's business.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from s3ecephys.storage.limits import TransferLimits

_BACKOFF_BASE = 0.1
_BACKOFF_CAP = 5.0
# Each attempt's failure is quoted in the final error, cut to this many characters.
_QUOTE = 200

T = TypeVar("T")


class FirstByteTimeoutError(TimeoutError):
    """No answer began within the connect and first-byte timeouts."""


class StalledError(TimeoutError):
    """A response delivered no new byte within the stall limit."""


class ReadFailedError(OSError):
    """A request failed on every attempt its retries and retry budget allowed; the message names
    the object and range and lists the attempts."""


async def first_byte(answer: Awaitable[T], seconds: float, what: str) -> T:
    """``answer`` (a request up to its response head), or :class:`FirstByteTimeoutError` after
    ``seconds``."""
    scope = asyncio.timeout(seconds)
    try:
        async with scope:
            return await answer
    except TimeoutError:
        if scope.expired():
            raise FirstByteTimeoutError(f"no answer to {what} within {seconds:g} s") from None
        raise


async def next_bytes(
    read: Awaitable[bytes], seconds: float | None, what: Callable[[], str]
) -> bytes:
    """The next piece of a body (``read``), or :class:`StalledError` when none arrives within
    ``seconds`` (None: wait as long as the transport's own timeouts allow). ``what`` describes
    the body's state for the error."""
    if seconds is None:
        return await read
    scope = asyncio.timeout(seconds)
    try:
        async with scope:
            return await read
    except TimeoutError:
        if scope.expired():
            raise StalledError(f"no new byte for {seconds:g} s ({what()})") from None
        raise


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    what: str,
    retries: int,
    limits: TransferLimits,
    translate: Callable[[Exception], Exception | None],
    attempts: list[int] | None = None,
    index: int = 0,
) -> T:
    """``call()``'s result, retried on transient failures.

    ``translate(error)`` returns the error to raise at once, or None when ``error`` is worth
    another attempt. At most ``retries`` retries, with jittered exponential backoff, and none that
    would start after ``limits.retry_budget`` seconds; then :class:`ReadFailedError`, naming
    ``what`` (the request and its object) and every failure. ``attempts[index]`` counts attempts.
    """
    started = time.monotonic()
    failures: list[str] = []
    for attempt in range(retries + 1):
        if attempts is not None:
            attempts[index] += 1
        try:
            return await call()
        except Exception as error:  # sorted into final and transient by translate
            final = translate(error)
            if final is not None:
                raise final from error
            failures.append(_quote(error))
            delay = min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt) * (0.5 + random.random() / 2)
            spent = time.monotonic() - started
            if attempt == retries or spent + delay > limits.retry_budget:
                listed = "; ".join(f"{n}: {text}" for n, text in enumerate(failures, 1))
                raise ReadFailedError(
                    f"{what} failed after {attempt + 1} attempts in {spent:.1f} s "
                    f"({limits.describe()}): {listed}"
                ) from error
        await asyncio.sleep(delay)
    raise AssertionError("unreachable")


def _quote(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= _QUOTE else text[: _QUOTE - 3] + "..."

