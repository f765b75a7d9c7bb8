"""The S3 requests of a :class:`~s3ecephys.storage.ranges.RangeStore`, each carried to its end.

A HEAD, the GETs of an assembly's requests and the two ends of a cold open go out here, through
whichever client the store uses (unsigned plain HTTP or s3fs/botocore: both answer in botocore's
shape). Every answer is checked before a byte is used (length, ``Content-Range``, the version
through ``If-Match``), waits are bounded by the store's limits (first byte, stalls), an answer
that breaks off is gone on with from where it stopped, and failures are sorted into final ones
(S3's refusals, a replaced object, an endpoint that does not answer) and those worth another
attempt. What the requests cost is recorded in the store's ``stats``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from s3ecephys.storage.assembly import Assembly
from s3ecephys.storage.attempts import (
    FirstByteTimeoutError,
    ReadFailedError,
    first_byte,
    next_bytes,
    with_retries,
)
from s3ecephys.storage.location import EndpointUnreachableError, unreachable_message
from s3ecephys.storage.objects import (
    ObjectChangedError,
    ObjectInfo,
    RangeNotSatisfiable,
    ShortReadError,
)

if TYPE_CHECKING:
    from s3ecephys.storage.ranges import RangeStore

T = TypeVar("T")

# Most bytes taken from a response body at once, and how many bytes of complete ranges are
# gathered before they are handed out (each hand-out wakes a consumer, which costs more than
# small chunks' decoding).
_READ_SIZE = 2**20
_HAND_OUT_BYTES = 2**20

# Error codes S3 (and botocore) use for failures that go away when asked again.
_TRANSIENT_CODES = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "Throttling",
    "ThrottlingException",
    "500",
    "502",
    "503",
    "504",
}


async def head_object(store: RangeStore) -> ObjectInfo:
    """The object's size and ETag (one HEAD)."""
    client = await store.client()
    answer = await _with_retries(
        store,
        lambda: _answer(store, client.head_object(Bucket=store.bucket, Key=store.key), "HEAD"),
        what="HEAD",
    )
    store.record(1, 0, 1)
    return ObjectInfo(size=int(answer["ContentLength"]), etag=answer.get("ETag"))


async def get_ranges(
    store: RangeStore, assembly: Assembly, deliver: Callable[[list], None]
) -> None:
    """Every request of ``assembly``, concurrently (at most ``store.concurrency`` at once); each
    range handed to ``deliver`` in batches as the bodies it lies in complete."""
    if store.expected is None:
        # Pin the version before the first read, so that later reads cannot mix versions.
        store.pin(await head_object(store))
    client = await store.client()
    requests = assembly.requests
    limit = asyncio.Semaphore(store.concurrency)
    attempts = [0] * len(requests)
    received = [0]

    async def one(index: int) -> None:
        offset, length = requests[index]
        async with limit:
            await _with_retries(
                store,
                lambda: _get_range(store, client, assembly, index, deliver, received),
                what=f"GET bytes {offset}-{offset + length - 1}",
                attempts=attempts,
                index=index,
            )

    tasks = [asyncio.ensure_future(one(index)) for index in range(len(requests))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        waves = -(-len(requests) // store.concurrency) + max(attempts) - 1
        store.record(sum(attempts), received[0], waves)


async def get_ends(store: RangeStore, head: int, tail: int) -> tuple[bytes, bytes]:
    """The first ``head`` and last ``tail`` bytes in one wave, without a HEAD first: both answers
    name the object's version, which is then pinned (see :meth:`RangeStore.fetch_ends`)."""
    client = await store.client()
    # "0-(head-1)" and "-tail" (the last bytes), those asked for.
    spans = [span for span in (f"0-{head - 1}" * (head > 0), f"-{tail}" * (tail > 0)) if span]
    attempts = [0] * len(spans)
    received, waves = 0, 0

    async def one(number: int) -> tuple[bytes, ObjectInfo]:
        arrived = _Arrived()

        async def attempt() -> tuple[bytes, ObjectInfo]:
            # An answer that broke off is gone on with: only its missing bytes are asked for.
            rest = arrived.rest()
            if rest is None:
                arrived.forget()
            return await _get_with_version(store, client, rest or spans[number], arrived)

        return await _with_retries(
            store,
            attempt,
            what=f"GET bytes={spans[number]}",
            attempts=attempts,
            index=number,
        )

    async def wave() -> list[tuple[bytes, ObjectInfo]]:
        nonlocal received, waves
        tasks = [asyncio.ensure_future(one(number)) for number in range(len(spans))]
        before = list(attempts)
        try:
            answers = list(await asyncio.gather(*tasks))
        finally:
            for task in tasks:  # a failed answer leaves no request running
                task.cancel()
            waves += max(now - then for now, then in zip(attempts, before, strict=True))
        received += sum(len(body) for body, _ in answers)
        return answers

    try:
        answers = await wave()
        if len({info.fingerprint for _, info in answers}) > 1:
            # Replaced between the two answers: once more, then it is changing too often.
            answers = await wave()
            if len({info.fingerprint for _, info in answers}) > 1:
                raise ObjectChangedError(
                    f"{store.url} changed while it was being opened; open it again"
                )
    finally:
        store.record(sum(attempts), received, waves)
    info = answers[0][1]
    store.pin(info)
    bodies = iter(body for body, _ in answers)
    return (next(bodies) if head > 0 else b""), (next(bodies) if tail > 0 else b"")


async def _get_with_version(
    store: RangeStore, client: Any, span: str, arrived: _Arrived | None = None
) -> tuple[bytes, ObjectInfo]:
    """The bytes of ``span`` (``a-b`` or ``-n``, clipped to the object) and the version of the
    object they are of.

    ``arrived`` keeps the body as it comes, so that an answer that breaks off can be gone on
    with: when it already holds bytes, ``span`` is the absolute rest of them, asked for of
    the same version (``If-Match``) and checked against its ``Content-Range``.
    """
    arrived = _Arrived() if arrived is None else arrived
    resuming = arrived.info is not None
    etag = store.expected.etag if store.expected is not None else None
    if resuming and arrived.info is not None:
        etag = etag or arrived.info.etag
    arguments = {"Bucket": store.bucket, "Key": store.key, "Range": f"bytes={span}"}
    if etag:
        arguments["IfMatch"] = etag
    answer = await _answer(store, client.get_object(**arguments), f"GET bytes={span}")
    # "bytes 0-1048575/310189396"; a server that sent the whole object has no Content-Range.
    described = str(answer.get("ContentRange", ""))
    total = described.rpartition("/")[2]
    size = int(total) if total.isdigit() else int(answer["ContentLength"])
    first, _, last = span.partition("-")
    if first:
        start, wanted = int(first), min(int(last) + 1, size) - int(first)
    else:
        wanted = min(int(last), size)
        start = size - wanted
    if resuming and described.partition(" ")[2].partition("/")[0] != f"{start}-{last}":
        arrived.forget()  # another answer than the rest asked for: start again
        raise ShortReadError(f"{store.url}: asked for bytes={span}, S3 answered {described!r}")
    if not resuming:
        arrived.info = ObjectInfo(size=size, etag=answer.get("ETag"))
        arrived.first, arrived.length = start, wanted
    before = len(arrived.pieces)
    stall = store.health.stall_limit(store.limits)
    async with answer["Body"] as body:
        while data := await next_bytes(
            body.read(_READ_SIZE), stall, lambda: f"bytes={span}, {arrived.count()} in"
        ):
            arrived.pieces.append(data)
    sent = sum(map(len, arrived.pieces[before:]))
    if sent != wanted:
        if sent > wanted:
            arrived.forget()
        raise ShortReadError(f"{store.url}: asked for bytes={span} of {size}, S3 sent {sent}")
    return b"".join(arrived.pieces), arrived.info


async def _get_range(
    store: RangeStore,
    client: Any,
    assembly: Assembly,
    index: int,
    deliver: Callable[[list], None],
    received: list[int],
) -> None:
    """Fill request ``index``'s body from where it stands, handing out ranges as it goes."""
    offset, length = assembly.requests[index]
    start = assembly.filled[index]
    if start == length:  # all in already: what failed came after the last byte
        return
    first, last = offset + start, offset + length - 1
    arguments = {"Bucket": store.bucket, "Key": store.key, "Range": f"bytes={first}-{last}"}
    if store.expected is not None and store.expected.etag:
        arguments["IfMatch"] = store.expected.etag
    answer = await _answer(store, client.get_object(**arguments), f"GET bytes {first}-{last}")
    # Checked before any byte is used: a server that ignored the range (or sent another)
    # would otherwise have its first bytes taken for ours.
    sent = answer.get("ContentLength")
    span = str(answer.get("ContentRange", "")).partition(" ")[2].partition("/")[0]
    wrong_length = sent is not None and int(sent) != last - first + 1
    if wrong_length or span not in ("", f"{first}-{last}"):
        raise ShortReadError(
            f"{store.url}: asked for bytes {first}-{last}, S3 answered "
            f"{answer.get('ContentRange') or f'{sent} bytes'}"
        )
    ready: list[tuple[int, Any]] = []
    held = 0
    stall = store.health.stall_limit(store.limits)

    def progress() -> str:
        return f"{assembly.filled[index] - start} of {length - start} bytes from {first} in"

    try:
        async with answer["Body"] as body:
            while (missing := length - assembly.filled[index]) > 0:
                data = await next_bytes(body.read(min(_READ_SIZE, missing)), stall, progress)
                if not data:
                    break
                received[0] += len(data)
                complete = assembly.add(index, data)
                ready += complete
                held += sum(len(piece) for _, piece in complete)
                if held >= _HAND_OUT_BYTES:
                    deliver(ready)
                    ready, held = [], 0
    finally:
        if ready:  # complete even when the rest of the answer was cut
            deliver(ready)
    if assembly.filled[index] < length:
        raise ShortReadError(
            f"{store.url}: asked for {length - start} bytes at {first}, "
            f"S3 sent {assembly.filled[index] - start}"
        )


async def _answer(store: RangeStore, request: Awaitable[T], what: str) -> T:
    """``request`` up to its response head, within the connect and first-byte timeouts; the
    time it took is remembered for the adaptive stall limit."""
    if store.health.known_unreachable():
        raise EndpointUnreachableError(
            unreachable_message(store.endpoint, "it did not answer moments ago", store.url)
        )
    started = time.monotonic()
    limit = store.limits.connect_timeout + store.limits.first_byte_timeout
    answer = await first_byte(request, limit, f"{what} of {store.url}")
    store.health.saw_answer(time.monotonic() - started)
    return answer


async def _with_retries(
    store: RangeStore,
    call: Callable[[], Awaitable[T]],
    *,
    what: str,
    attempts: list[int] | None = None,
    index: int = 0,
) -> T:
    """``call()`` with the store's retries and limits. A request that gives up without ever
    getting an answer marks the endpoint lost (see :meth:`EndpointHealth.saw_loss`)."""
    try:
        return await with_retries(
            call,
            what=f"{what} of {store.url}",
            retries=store.retries,
            limits=store.limits,
            translate=lambda error: _translate(store, error, what),
            attempts=attempts,
            index=index,
        )
    except ReadFailedError as failure:
        if isinstance(failure.__cause__, Exception) and _no_answer(failure.__cause__):
            store.health.saw_loss()
        raise


def _translate(store: RangeStore, error: Exception, what: str) -> Exception | None:
    """The error to raise at once, or None when ``error`` is worth another attempt."""
    if isinstance(error, EndpointUnreachableError):
        return error
    # botocore's ClientError or the plain-HTTP client's S3ErrorResponse: S3 answered.
    if isinstance(getattr(error, "response", None), dict) and "Error" in error.response:
        store.health.saw_answer()
        answer = error.response.get("Error", {})
        code = str(answer.get("Code", ""))
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("PreconditionFailed", "412") or status == 412:
            if store.on_changed is not None:
                store.on_changed()
            return ObjectChangedError(store.changed_message())
        if code == "InvalidRange" or status == 416:
            return RangeNotSatisfiable(f"{what} of {store.url}: range not satisfiable")
        if code in ("NoSuchKey", "404", "NotFound") or status == 404:
            return FileNotFoundError(f"{store.url} does not exist ({what})")
        if code in ("AccessDenied", "403", "Forbidden") or status == 403:
            return PermissionError(
                f"access to {store.url} denied ({what}); the public bucket is read "
                "anonymously, a private one needs credentials in storage_options"
            )
        if code in _TRANSIENT_CODES or (status is not None and status >= 500):
            return None
        return OSError(f"{what} of {store.url} failed: {code} {answer.get('Message', '')}")
    if _no_answer(error) and not store.health.answered:
        # Retrying an endpoint that never answered only delays the news by minutes.
        store.health.saw_no_answer()
        return EndpointUnreachableError(
            unreachable_message(store.endpoint, f"{what}: {error}", store.url)
        )
    if _no_answer(error) and store.health.lost():
        # Another request has just spent its whole retry budget on this silence.
        detail = f"it answered earlier but stopped, moments ago; {what}: {error}"
        return EndpointUnreachableError(unreachable_message(store.endpoint, detail, store.url))
    if isinstance(error, ShortReadError | asyncio.TimeoutError | ConnectionError | OSError):
        return None
    # aiohttp/botocore transport failures (resets, payload errors, endpoint timeouts).
    module = type(error).__module__
    if module.startswith(("aiohttp", "botocore", "aiobotocore")):
        return None
    return error


@dataclass
class _Arrived:
    """One end of an object as far as it has arrived: the version it is of, the offset of its
    first byte, its length and the pieces so far."""

    info: ObjectInfo | None = None
    first: int = 0
    length: int = 0
    pieces: list[bytes] = field(default_factory=list)

    def count(self) -> int:
        return sum(map(len, self.pieces))

    def rest(self) -> str | None:
        """``a-b`` of the bytes still missing, or None when there is nothing to go on with."""
        count = self.count()
        if self.info is None or not 0 < count < self.length:
            return None
        return f"{self.first + count}-{self.first + self.length - 1}"

    def forget(self) -> None:
        self.info, self.pieces = None, []


def _no_answer(error: Exception) -> bool:
    """Whether ``error`` means the endpoint gave no answer at all (no connection, silence)."""
    if isinstance(error, FirstByteTimeoutError | ConnectionRefusedError):
        return True
    # Looked up, not imported: only the client in use has been imported.
    botocore = sys.modules.get("botocore.exceptions")
    if botocore is not None and isinstance(error, botocore.ConnectionError):
        return True
    aiohttp = sys.modules.get("aiohttp")
    return aiohttp is not None and isinstance(
        error, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError
    )
