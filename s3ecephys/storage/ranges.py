"""Many byte ranges of one object in one call: coalesced, concurrent, retried, verified.

Everything above this module asks for bytes as ``(offset, length)`` lists and gets back exactly
those bytes, in order. How they travel is decided here: neighbouring ranges merge into one request
when the gap between them is cheaper to download than a request is to wait for, very long ranges
split so that parts run side by side, all requests of one call run concurrently (bounded), and
transient failures are retried with backoff; an answer cut short is resumed where it stopped.
:meth:`RangeStore.fetch` returns all ranges at once; :meth:`RangeStore.fetch_each` hands each range
out as soon as its bytes are in, so that callers can decode while the rest is still on the wire.
Every response is checked for its length (and, for a range, its ``Content-Range``), and on S3
every GET carries ``If-Match`` with the ETag seen when the object was first looked at (by a HEAD,
or by the first wave of :meth:`RangeStore.fetch_ends`, whose answers tell it), so bytes of two
versions of a file are never mixed: a replaced object raises :class:`ObjectChangedError`.

No request waits without bound (see :mod:`s3ecephys.storage.limits` for the four limits): an answer
whose head does not come within the connect and first-byte timeouts, or whose body delivers no new
byte for the stall limit, is abandoned and the bytes still missing are asked for again; a request
that keeps failing ends, within its retry budget, in a :class:`ReadFailedError` naming the object,
the range and every attempt. An endpoint that has never answered in this process is not retried:
it fails at once with an :class:`EndpointUnreachableError` that says what to do; so does, after a
single unanswered attempt, any request in the moments after another spent its whole budget on an
endpoint that stopped answering (a network gone mid-session costs one budget, not one per read).

Anonymous reads (the public bucket, a local S3) go as unsigned GETs over plain HTTP
(:mod:`s3ecephys.storage.http_client`: no botocore to import or set up before the first byte);
credentials, profiles or any other s3fs option send them through s3fs. Both clients answer in one
shape, so every check, limit and count here applies to either.

A :class:`RangeStore` pickles as ``(url, storage_options, expected ObjectInfo)``: no client, event
loop or file handle crosses a process boundary, which is what dask's process workers need.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit
from urllib.request import url2pathname

from s3ecephys.storage import read_ahead
from s3ecephys.storage.assembly import (
    DEFAULT_GAP,
    DEFAULT_MAX_REQUEST,
    Assembly,
    coalesce_ranges,
)
from s3ecephys.storage.attempts import (
    FirstByteTimeoutError,
    ReadFailedError,
    StalledError,
    first_byte,
    next_bytes,
    with_retries,
)
from s3ecephys.storage.http_client import anonymous_client, plain_http_fits
from s3ecephys.storage.limits import EndpointHealth, endpoint_health, split_limits
from s3ecephys.storage.location import (
    DEFAULT_REGION,
    EndpointUnreachableError,
    endpoint_of,
    s3_storage_options,
    unreachable_message,
)
from s3ecephys.storage.objects import (
    ObjectChangedError,
    ObjectInfo,
    RangeNotSatisfiable,
    RequestStats,
    ShortReadError,
)
from s3ecephys.storage.read_ahead import InFlight

__all__ = [
    "DEFAULT_GAP",
    "DEFAULT_MAX_REQUEST",
    "EndpointUnreachableError",
    "FirstByteTimeoutError",
    "ObjectChangedError",
    "ObjectInfo",
    "RangeStore",
    "ReadFailedError",
    "RequestStats",
    "ShortReadError",
    "StalledError",
    "coalesce_ranges",
]

T = TypeVar("T")

# Requests in flight at once. A wave is typically many small ranges (a chunk B-tree level: ~100
# nodes; one channel over a real recording: ~256 chunks) that S3 answers side by side; above this
# they queue and each further batch costs a round trip.
DEFAULT_CONCURRENCY = 128
DEFAULT_RETRIES = 5
# Most bytes taken from a response body at once, and how many bytes of complete ranges are
# gathered before they are handed out (each hand-out wakes a consumer, which costs more than
# small chunks' decoding).
_READ_SIZE = 2**20
_HAND_OUT_BYTES = 2**20
# Added to the first-byte timeout for botocore's own socket read timeout, so that the limits here,
# with their clearer errors, always end a wait first.
_STALL_BACKSTOP = 60.0

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


class RangeStore:
    """Reads byte ranges of one object (``s3://bucket/key``, ``file://`` URL or local path).

    ``storage_options`` are s3fs arguments, merged over the defaults of
    :func:`~s3ecephys.storage.location.s3_storage_options` (anonymous, us-west-2, endpoint from the
    environment), plus the limits of :mod:`s3ecephys.storage.limits` (``connect_timeout``,
    ``first_byte_timeout``, ``stall_limit``, ``retry_budget``). ``expected`` pins the object
    version (from an index): reads then need no HEAD and fail with :class:`ObjectChangedError` if
    the object is not that version any more.
    """

    def __init__(
        self,
        url: str | os.PathLike[str],
        storage_options: Mapping[str, Any] | None = None,
        *,
        expected: ObjectInfo | None = None,
        gap: int = DEFAULT_GAP,
        max_request: int = DEFAULT_MAX_REQUEST,
        concurrency: int = DEFAULT_CONCURRENCY,
        retries: int = DEFAULT_RETRIES,
    ):
        url = os.fspath(url)
        self.is_s3 = url.startswith("s3://")
        if self.is_s3:
            self.url = url
            self.bucket, _, self.key = url.removeprefix("s3://").partition("/")
            if not self.bucket or not self.key:
                raise ValueError(f"expected s3://bucket/key, got {url!r}")
            self.storage_options = s3_storage_options(storage_options)
        elif url.startswith("file://"):
            self.url = url2pathname(urlsplit(url).path)
            self.storage_options = dict(storage_options or {})
        elif "://" in url:
            raise ValueError(f"unsupported URL {url!r}: use s3://bucket/key or a local path")
        else:
            self.url = os.path.abspath(os.path.expanduser(url))
            self.storage_options = dict(storage_options or {})
        self.limits, self._client_options = split_limits(self.storage_options)
        self.endpoint = endpoint_of(self.storage_options) if self.is_s3 else self.url
        # Anonymous reads need no signature: plain HTTP spares botocore's import and set-up.
        self.plain_http = self.is_s3 and plain_http_fits(self._client_options)
        self.expected = expected
        # Whether ``expected`` has been compared with the object itself (see info()).
        self._checked = False
        self.gap, self.max_request = gap, max_request
        self.concurrency, self.retries = concurrency, retries
        self.stats = RequestStats()
        # Called when the object turns out to be another version than ``expected`` (set by
        # whoever pinned that version from a cache, to forget it); never pickled.
        self.on_changed: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._filesystem: Any = None

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_store,
            (
                self.url,
                self.storage_options,
                self.expected,
                self.gap,
                self.max_request,
                self.concurrency,
                self.retries,
            ),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def twin(self) -> RangeStore:
        """Another store of the same object and version, with request counts of its own (for
        reads in the background that a caller's ``stats`` should not show)."""
        twin = _rebuild_store(*self.__reduce__()[1])
        if self._checked and self.expected is not None:
            twin.pin(self.expected)
        twin.on_changed = self.on_changed
        return twin

    # -- object identity -------------------------------------------------------------------------

    def info(self) -> ObjectInfo:
        """The object's size and version; one HEAD (or stat) the first time, remembered after.

        With ``expected`` given, the object is looked at once to check it is still that version.
        """
        if self.expected is not None and self._checked:
            return self.expected
        current = self._stat() if not self.is_s3 else self._run(self._head)
        if self.expected is not None and current.fingerprint != self.expected.fingerprint:
            raise ObjectChangedError(self._changed_message(current))
        self.expected = current
        self._checked = True
        return current

    def pin(self, info: ObjectInfo) -> None:
        """Take ``info`` as the object's version without asking (it was remembered from an earlier
        look). Nothing is lost by trusting it: every GET carries ``If-Match``, so a replaced
        object still fails with :class:`ObjectChangedError` on the first read."""
        self.expected, self._checked = info, True

    def _changed_message(self, current: ObjectInfo | None = None) -> str:
        if self.expected is None:  # replaced while its first bytes were arriving
            return f"{self.url} changed while it was being opened; open it again"
        now = f" (now size {current.size}, {current.fingerprint})" if current else ""
        return (
            f"{self.url} changed since it was indexed (was size {self.expected.size}, "
            f"{self.expected.fingerprint}){now}; open it again to index the new version"
        )

    # -- reads -----------------------------------------------------------------------------------

    def fetch(self, ranges: Sequence[tuple[int, int]], *, views: bool = False) -> list[Any]:
        """Exactly the bytes of each ``(offset, length)``, in the order asked.

        All ranges go out in one concurrent wave (or several when there are more requests than
        ``concurrency``). Ranges past the end of the object raise ``ValueError``. With
        ``views``, ranges that lie inside one request come back as memoryviews of its body, not
        copies (for readers that consume them at once: many chunks per request would otherwise
        be held twice).
        """
        assembly = self._assemble(ranges, views)
        results: list[Any] = [b""] * assembly.count

        def keep(batch: list[tuple[int, Any]]) -> None:
            for position, body in batch:
                results[position] = body

        if assembly.requests and self.is_s3:
            # Straight into the results on the event loop: no thread is woken per arrival.
            self._run(self._get, assembly, keep)
        elif assembly.requests:
            for batch in self._read_local(assembly):
                keep(batch)
        return results

    def fetch_each(
        self, ranges: Sequence[tuple[int, int]], *, views: bool = False
    ) -> Generator[list[tuple[int, Any]], None, None]:
        """The bytes of each ``(offset, length)`` as soon as they have arrived: batches of
        ``(position in ranges, bytes)``, every position exactly once, in no fixed order.

        The same requests as :meth:`fetch`, but a consumer can decode the first chunks while
        the rest are still on the way. Stopping early (``close()``, an error in the consumer)
        cancels the requests still running.
        """
        if self.is_s3 and self.expected is not None and ranges:
            ahead = read_ahead.take(self._ahead_key(ranges, views))
            if ahead is not None:
                return ahead.batches()
        assembly = self._assemble(ranges, views)
        if self.is_s3 and assembly.requests:
            return self._stream(assembly)
        batches = [assembly.empty, *(self._read_local(assembly) if assembly.requests else [])]
        return (batch for batch in batches if batch)

    def _assemble(self, ranges: Sequence[tuple[int, int]], views: bool) -> Assembly:
        """The requests that bring ``ranges`` (checked to lie inside the object)."""
        ranges = [(int(offset), int(length)) for offset, length in ranges]
        if any(offset < 0 or length < 0 for offset, length in ranges):
            raise ValueError(f"negative offset or length in {ranges[:5]}")
        requests = coalesce_ranges(ranges, gap=self.gap, max_request=self.max_request)
        if requests and self.expected is not None:
            end = max(offset + length for offset, length in requests)
            if end > self.expected.size:
                raise ValueError(
                    f"range ending at byte {end} is past the end of {self.url} "
                    f"({self.expected.size} bytes)"
                )
        return Assembly(ranges, requests, views)

    def read(self, offset: int, length: int) -> bytes:
        """One range (see :meth:`fetch`)."""
        return self.fetch([(offset, length)])[0]

    def fetch_ends(self, head: int, tail: int) -> tuple[bytes, bytes]:
        """The first ``head`` and the last ``tail`` bytes of the object (all of it when it is
        smaller), in one concurrent wave.

        On S3, when the object's version is not known yet, it is not asked for first: both
        answers carry the object's size and ETag, which are then pinned as by :meth:`info` (a
        cold open saves the round trip of a HEAD).
        """
        if self.is_s3 and self.expected is None and (head > 0 or tail > 0):
            try:
                return self._run(self._get_ends, head, tail)
            except RangeNotSatisfiable:  # an empty object: nothing to cut ends from
                pass
        size = self.info().size
        head, tail = min(head, size), min(tail, size)
        first, last = self.fetch([(0, head), (size - tail, tail)])
        return first, last

    def _count(self, requests: int, received: int, round_trips: int) -> None:
        with self._lock:
            self.stats.requests += requests
            self.stats.bytes += received
            self.stats.round_trips += round_trips

    # -- local files -----------------------------------------------------------------------------

    def _stat(self) -> ObjectInfo:
        status = os.stat(self.url)
        return ObjectInfo(size=status.st_size, mtime_ns=status.st_mtime_ns)

    def _read_local(self, assembly: Assembly) -> list[list[tuple[int, Any]]]:
        """Every request of ``assembly`` read; the ranges each completes."""
        requests = assembly.requests
        with open(self.url, "rb") as handle:
            status = os.fstat(handle.fileno())
            current = ObjectInfo(size=status.st_size, mtime_ns=status.st_mtime_ns)
            if self.expected is None:
                self.expected, self._checked = current, True
            elif current.fingerprint != self.expected.fingerprint:
                raise ObjectChangedError(self._changed_message(current))
            bodies = [os.pread(handle.fileno(), length, offset) for offset, length in requests]
        for (offset, length), body in zip(requests, bodies, strict=True):
            if len(body) != length:
                raise ShortReadError(
                    f"{self.url}: asked for {length} bytes at {offset}, file gave {len(body)}"
                )
        self._count(len(requests), sum(map(len, bodies)), 1)
        return [assembly.add(index, body) for index, body in enumerate(bodies)]

    # -- S3 --------------------------------------------------------------------------------------

    def filesystem(self) -> Any:
        """The s3fs filesystem (created on first use; its event loop runs in fsspec's thread);
        not used for anonymous reads, which go over plain HTTP."""
        if self._filesystem is None:
            import s3fs

            options = dict(self._client_options)
            # Without enough pooled connections, "concurrent" requests queue inside botocore.
            config = dict(options.get("config_kwargs", {}))
            config.setdefault("max_pool_connections", self.concurrency)
            # Retries, stalls and first bytes are handled here (bounded, resumed, counted);
            # botocore's own retries would multiply every wait and hide requests from the stats.
            config.setdefault("connect_timeout", self.limits.connect_timeout)
            config.setdefault("retries", {"total_max_attempts": 1})
            # A backstop only: the first-byte and stall limits below end a wait sooner.
            config.setdefault("read_timeout", self.limits.first_byte_timeout + _STALL_BACKSTOP)
            options["config_kwargs"] = config
            self._filesystem = s3fs.S3FileSystem(**options)
        return self._filesystem

    def _loop(self) -> asyncio.AbstractEventLoop:
        """The event loop requests run on: fsspec's I/O thread (s3fs's own, when it is used)."""
        if self.plain_http:
            from fsspec.asyn import get_loop

            return get_loop()
        return self.filesystem().loop

    def _run(self, function: Any, *arguments: Any) -> Any:
        from fsspec.asyn import sync

        return sync(self._loop(), function, *arguments)

    async def _client(self) -> Any:
        if self.plain_http:
            client_kwargs = self._client_options.get("client_kwargs") or {}
            endpoint = self._client_options.get("endpoint_url") or client_kwargs.get(
                "endpoint_url"
            )
            region = client_kwargs.get("region_name", DEFAULT_REGION)
            return anonymous_client(
                endpoint, region, self.concurrency, self.limits.connect_timeout
            )
        filesystem = self.filesystem()
        await filesystem.set_session()
        return await filesystem.get_s3(self.bucket)

    @property
    def health(self) -> EndpointHealth:
        """What this process has seen of the store's endpoint (shared by its stores)."""
        return endpoint_health(self.endpoint)

    async def _answer(self, request: Awaitable[T], what: str) -> T:
        """``request`` up to its response head, within the connect and first-byte timeouts; the
        time it took is remembered for the adaptive stall limit."""
        if self.health.known_unreachable():
            raise EndpointUnreachableError(
                unreachable_message(self.endpoint, "it did not answer moments ago", self.url)
            )
        started = time.monotonic()
        limit = self.limits.connect_timeout + self.limits.first_byte_timeout
        answer = await first_byte(request, limit, f"{what} of {self.url}")
        self.health.saw_answer(time.monotonic() - started)
        return answer

    async def _head(self) -> ObjectInfo:
        client = await self._client()
        answer = await self._with_retries(
            lambda: self._answer(client.head_object(Bucket=self.bucket, Key=self.key), "HEAD"),
            what="HEAD",
        )
        self._count(1, 0, 1)
        return ObjectInfo(size=int(answer["ContentLength"]), etag=answer.get("ETag"))

    def _stream(self, assembly: Assembly) -> Generator[list[tuple[int, Any]], None, None]:
        """Run the requests of ``assembly`` on the event loop (once iterated); yield ranges as
        they complete."""
        yield from self._start(assembly).batches()

    def _start(self, assembly: Assembly) -> InFlight:
        loop = self._loop()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise NotImplementedError("RangeStore reads cannot run inside its own event loop")
        return InFlight.start(loop, lambda deliver: self._get(assembly, deliver), assembly.empty)

    def read_ahead(self, ranges: Sequence[tuple[int, int]], *, views: bool = False) -> None:
        """Start fetching ``ranges`` now, for a :meth:`fetch_each` of exactly these ranges soon
        (the next block of a scan; see :mod:`s3ecephys.storage.read_ahead`). S3 objects of a
        known version only: a local file has no latency to hide."""
        if not self.is_s3 or self.expected is None or not ranges:
            return
        assembly = self._assemble(ranges, views)
        size = sum(length for _, length in assembly.requests)
        read_ahead.start(self._ahead_key(ranges, views), size, lambda: self._start(assembly))

    def was_asked(self, ranges: Sequence[tuple[int, int]], *, views: bool = False) -> bool:
        """Whether a read of exactly ``ranges`` began moments ago (which way a scan goes)."""
        if not self.is_s3 or self.expected is None or not ranges:
            return False
        return read_ahead.asked(self._ahead_key(ranges, views))

    def _ahead_key(self, ranges: Sequence[tuple[int, int]], views: bool) -> Hashable:
        assert self.expected is not None
        return (self.url, self.endpoint, self.expected.fingerprint, views, tuple(ranges))

    async def _get(self, assembly: Assembly, deliver: Callable[[list], None]) -> None:
        if self.expected is None:
            # Pin the version before the first read, so that later reads cannot mix versions.
            self.expected = await self._head()
            self._checked = True
        client = await self._client()
        requests = assembly.requests
        limit = asyncio.Semaphore(self.concurrency)
        attempts = [0] * len(requests)
        received = [0]

        async def one(index: int) -> None:
            offset, length = requests[index]
            async with limit:
                await self._with_retries(
                    lambda: self._get_range(client, assembly, index, deliver, received),
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
            waves = -(-len(requests) // self.concurrency) + max(attempts) - 1
            self._count(sum(attempts), received[0], waves)

    async def _get_ends(self, head: int, tail: int) -> tuple[bytes, bytes]:
        client = await self._client()
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
                return await self._get_with_version(client, rest or spans[number], arrived)

            return await self._with_retries(
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
                        f"{self.url} changed while it was being opened; open it again"
                    )
        finally:
            self._count(sum(attempts), received, waves)
        info = answers[0][1]
        self.expected, self._checked = info, True
        bodies = iter(body for body, _ in answers)
        return (next(bodies) if head > 0 else b""), (next(bodies) if tail > 0 else b"")

    async def _get_with_version(
        self, client: Any, span: str, arrived: _Arrived | None = None
    ) -> tuple[bytes, ObjectInfo]:
        """The bytes of ``span`` (``a-b`` or ``-n``, clipped to the object) and the version of the
        object they are of.

        ``arrived`` keeps the body as it comes, so that an answer that breaks off can be gone on
        with: when it already holds bytes, ``span`` is the absolute rest of them, asked for of
        the same version (``If-Match``) and checked against its ``Content-Range``.
        """
        arrived = _Arrived() if arrived is None else arrived
        resuming = arrived.info is not None
        etag = self.expected.etag if self.expected is not None else None
        if resuming and arrived.info is not None:
            etag = etag or arrived.info.etag
        arguments = {"Bucket": self.bucket, "Key": self.key, "Range": f"bytes={span}"}
        if etag:
            arguments["IfMatch"] = etag
        answer = await self._answer(client.get_object(**arguments), f"GET bytes={span}")
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
            raise ShortReadError(f"{self.url}: asked for bytes={span}, S3 answered {described!r}")
        if not resuming:
            arrived.info = ObjectInfo(size=size, etag=answer.get("ETag"))
            arrived.first, arrived.length = start, wanted
        before = len(arrived.pieces)
        stall = self.health.stall_limit(self.limits)
        async with answer["Body"] as body:
            while data := await next_bytes(
                body.read(_READ_SIZE), stall, lambda: f"bytes={span}, {arrived.count()} in"
            ):
                arrived.pieces.append(data)
        sent = sum(map(len, arrived.pieces[before:]))
        if sent != wanted:
            if sent > wanted:
                arrived.forget()
            raise ShortReadError(f"{self.url}: asked for bytes={span} of {size}, S3 sent {sent}")
        return b"".join(arrived.pieces), arrived.info

    async def _get_range(
        self,
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
        arguments = {"Bucket": self.bucket, "Key": self.key, "Range": f"bytes={first}-{last}"}
        if self.expected is not None and self.expected.etag:
            arguments["IfMatch"] = self.expected.etag
        answer = await self._answer(client.get_object(**arguments), f"GET bytes {first}-{last}")
        # Checked before any byte is used: a server that ignored the range (or sent another)
        # would otherwise have its first bytes taken for ours.
        sent = answer.get("ContentLength")
        span = str(answer.get("ContentRange", "")).partition(" ")[2].partition("/")[0]
        wrong_length = sent is not None and int(sent) != last - first + 1
        if wrong_length or span not in ("", f"{first}-{last}"):
            raise ShortReadError(
                f"{self.url}: asked for bytes {first}-{last}, S3 answered "
                f"{answer.get('ContentRange') or f'{sent} bytes'}"
            )
        ready: list[tuple[int, Any]] = []
        held = 0
        stall = self.health.stall_limit(self.limits)

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
                f"{self.url}: asked for {length - start} bytes at {first}, "
                f"S3 sent {assembly.filled[index] - start}"
            )

    async def _with_retries(
        self,
        call: Callable[[], Awaitable[T]],
        *,
        what: str,
        attempts: list[int] | None = None,
        index: int = 0,
    ) -> T:
        try:
            return await with_retries(
                call,
                what=f"{what} of {self.url}",
                retries=self.retries,
                limits=self.limits,
                translate=lambda error: self._translate(error, what),
                attempts=attempts,
                index=index,
            )
        except ReadFailedError as failure:
            if isinstance(failure.__cause__, Exception) and _no_answer(failure.__cause__):
                self.health.saw_loss()
            raise

    def _translate(self, error: Exception, what: str) -> Exception | None:
        """The error to raise at once, or None when ``error`` is worth another attempt."""
        if isinstance(error, EndpointUnreachableError):
            return error
        # botocore's ClientError or the plain-HTTP client's S3ErrorResponse: S3 answered.
        if isinstance(getattr(error, "response", None), dict) and "Error" in error.response:
            self.health.saw_answer()
            answer = error.response.get("Error", {})
            code = str(answer.get("Code", ""))
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("PreconditionFailed", "412") or status == 412:
                if self.on_changed is not None:
                    self.on_changed()
                return ObjectChangedError(self._changed_message())
            if code == "InvalidRange" or status == 416:
                return RangeNotSatisfiable(f"{what} of {self.url}: range not satisfiable")
            if code in ("NoSuchKey", "404", "NotFound") or status == 404:
                return FileNotFoundError(f"{self.url} does not exist ({what})")
            if code in ("AccessDenied", "403", "Forbidden") or status == 403:
                return PermissionError(
                    f"access to {self.url} denied ({what}); the public bucket is read "
                    "anonymously, a private one needs credentials in storage_options"
                )
            if code in _TRANSIENT_CODES or (status is not None and status >= 500):
                return None
            return OSError(f"{what} of {self.url} failed: {code} {answer.get('Message', '')}")
        if _no_answer(error) and not self.health.answered:
            # Retrying an endpoint that never answered only delays the news by minutes.
            self.health.saw_no_answer()
            return EndpointUnreachableError(
                unreachable_message(self.endpoint, f"{what}: {error}", self.url)
            )
        if _no_answer(error) and self.health.lost():
            # Another request has just spent its whole retry budget on this silence.
            detail = f"it answered earlier but stopped, moments ago; {what}: {error}"
            return EndpointUnreachableError(unreachable_message(self.endpoint, detail, self.url))
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


def _rebuild_store(
    url: str,
    storage_options: dict[str, Any],
    expected: ObjectInfo | None,
    gap: int,
    max_request: int,
    concurrency: int,
    retries: int,
) -> RangeStore:
    return RangeStore(
        url,
        storage_options,
        expected=expected,
        gap=gap,
        max_request=max_request,
        concurrency=concurrency,
        retries=retries,
    )
