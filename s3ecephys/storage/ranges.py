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

A :class:`RangeStore` pickles as ``(url, storage_options, expected ObjectInfo)``: no client, event
loop or file handle crosses a process boundary, which is what dask's process workers need.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import queue
import random
import threading
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from s3ecephys.storage.location import s3_storage_options

# Waiting for one more request on S3 costs ~20-60 ms, in which ~1-5 MB arrive on one connection:
# a gap below this is cheaper to download than to skip.
DEFAULT_GAP = 512 * 1024
# Long ranges split into parts of this size, so that one big read runs on several connections.
DEFAULT_MAX_REQUEST = 8 * 2**20
# Requests in flight at once. A wave is typically many small ranges (a chunk B-tree level: ~100
# nodes; one channel over a real recording: ~256 chunks) that S3 answers side by side; above this
# they queue and each further batch costs a round trip.
DEFAULT_CONCURRENCY = 128
DEFAULT_RETRIES = 5
_BACKOFF_BASE = 0.1
_BACKOFF_CAP = 5.0
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


class ObjectChangedError(OSError):
    """The object changed since it was indexed; its bytes must not be mixed with older ones."""


class ShortReadError(OSError):
    """A response held fewer or more bytes than asked for, on every retry."""


class _RangeNotSatisfiable(OSError):
    """S3 answered 416: the range asked for lies past the end (of an empty object)."""


@dataclass(frozen=True)
class ObjectInfo:
    """What identifies one version of an object: its size and its ETag (S3) or mtime (local)."""

    size: int
    etag: str | None = None
    mtime_ns: int | None = None

    @property
    def fingerprint(self) -> str:
        """A text that changes whenever the object's content may have changed."""
        if self.etag:
            return f"etag:{self.etag.strip(chr(34))}:{self.size}"
        return f"mtime:{self.mtime_ns}:{self.size}"


@dataclass
class RequestStats:
    """Requests sent, bytes received and round trips on the critical path (sequential waves)."""

    requests: int = 0
    bytes: int = 0
    round_trips: int = 0

    def reset(self) -> None:
        self.requests = self.bytes = self.round_trips = 0

    def copy(self) -> RequestStats:
        return RequestStats(self.requests, self.bytes, self.round_trips)

    def __sub__(self, other: RequestStats) -> RequestStats:
        return RequestStats(
            self.requests - other.requests,
            self.bytes - other.bytes,
            self.round_trips - other.round_trips,
        )


def coalesce_ranges(
    ranges: Sequence[tuple[int, int]],
    *,
    gap: int = DEFAULT_GAP,
    max_request: int = DEFAULT_MAX_REQUEST,
) -> list[tuple[int, int]]:
    """The requests that cover ``ranges``: sorted, merged across gaps <= ``gap``, split at
    ``max_request`` bytes. Overlapping and repeated ranges are fetched once."""
    merged: list[list[int]] = []
    for offset, length in sorted((o, n) for o, n in ranges if n > 0):
        if merged and offset <= merged[-1][1] + gap:
            merged[-1][1] = max(merged[-1][1], offset + length)
        else:
            merged.append([offset, offset + length])
    requests = []
    for start, end in merged:
        parts = -(-(end - start) // max_request)
        step = -(-(end - start) // parts)
        requests.extend((o, min(step, end - o)) for o in range(start, end, step))
    return requests


class _Assembly:
    """Which asked ranges each request carries, handed out as soon as all their bytes are in.

    A request's body is kept as the pieces it arrived in (a retried request goes on from where
    its answer was cut); a range is handed out once, the moment the body it lies in has reached
    its end: as a slice of the piece that holds it, joined only when it straddles pieces or the
    two parts of a split request.
    """

    def __init__(
        self, ranges: Sequence[tuple[int, int]], requests: Sequence[tuple[int, int]], views: bool
    ):
        self.requests = requests
        self.views = views
        self.count = len(ranges)
        self.filled = [0] * len(requests)
        self.empty = [(position, b"") for position, (_, length) in enumerate(ranges) if not length]
        self._pieces: list[list[bytes]] = [[] for _ in requests]
        self._piece_starts: list[list[int]] = [[] for _ in requests]
        # Per request: (end, position, offset) of the ranges inside it, by end; and how many of
        # them have been handed out.
        self._inside: list[list[tuple[int, int, int]]] = [[] for _ in requests]
        self._handed = [0] * len(requests)
        # Per request: the ranges that need it and others (their numbers in ``_spans``), and
        # for each such range how many of its requests are still incomplete.
        self._across: list[list[int]] = [[] for _ in requests]
        self._spans: list[tuple[int, int, int, range]] = []
        self._waiting: list[int] = []
        starts = [offset for offset, _ in requests]
        for position, (offset, length) in enumerate(ranges):
            if not length:
                continue
            first = bisect.bisect_right(starts, offset) - 1
            last = bisect.bisect_left(starts, offset + length) - 1
            if first == last:
                self._inside[first].append((offset + length, position, offset))
                continue
            for index in range(first, last + 1):
                self._across[index].append(len(self._spans))
            self._spans.append((position, offset, length, range(first, last + 1)))
            self._waiting.append(last + 1 - first)
        for inside in self._inside:
            inside.sort()

    def add(self, index: int, data: bytes) -> list[tuple[int, Any]]:
        """The next bytes of request ``index`` have arrived: the ranges now complete."""
        self._piece_starts[index].append(self.filled[index])
        self._pieces[index].append(data)
        self.filled[index] += len(data)
        request_offset, request_length = self.requests[index]
        reached, inside = request_offset + self.filled[index], self._inside[index]
        ready = []
        while self._handed[index] < len(inside) and inside[self._handed[index]][0] <= reached:
            end, position, offset = inside[self._handed[index]]
            ready.append((position, self._cut(index, offset - request_offset, end - offset)))
            self._handed[index] += 1
        if self.filled[index] == request_length:
            for span in self._across[index]:
                self._waiting[span] -= 1
                if not self._waiting[span]:
                    position, offset, length, parts = self._spans[span]
                    ready.append((position, self._join(offset, length, parts)))
        return ready

    def _cut(self, index: int, start: int, length: int) -> Any:
        """``length`` bytes from ``start`` of request ``index``'s body."""
        starts, pieces = self._piece_starts[index], self._pieces[index]
        number = bisect.bisect_right(starts, start) - 1
        within = start - starts[number]
        if within + length <= len(pieces[number]):
            piece = memoryview(pieces[number]) if self.views else pieces[number]
            return piece[within : within + length]
        parts = []
        while length > 0:
            within = start - starts[number]
            part = memoryview(pieces[number])[within : within + length]
            parts.append(part)
            start, length, number = start + len(part), length - len(part), number + 1
        return b"".join(parts)

    def _join(self, offset: int, length: int, parts: range) -> bytes:
        pieces, end = [], offset + length
        for index in parts:
            request_offset, request_length = self.requests[index]
            start = max(offset, request_offset) - request_offset
            stop = min(end, request_offset + request_length) - request_offset
            pieces.append(self._cut(index, start, stop - start))
        return b"".join(pieces)


class RangeStore:
    """Reads byte ranges of one object (``s3://bucket/key``, ``file://`` URL or local path).

    ``storage_options`` are s3fs arguments, merged over the defaults of
    :func:`~s3ecephys.storage.location.s3_storage_options` (anonymous, us-west-2, endpoint from the
    environment). ``expected`` pins the object version (from an index): reads then need no HEAD and
    fail with :class:`ObjectChangedError` if the object is not that version any more.
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
        assembly = self._assemble(ranges, views)
        if self.is_s3 and assembly.requests:
            return self._stream(assembly)
        batches = [assembly.empty, *(self._read_local(assembly) if assembly.requests else [])]
        return (batch for batch in batches if batch)

    def _assemble(self, ranges: Sequence[tuple[int, int]], views: bool) -> _Assembly:
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
        return _Assembly(ranges, requests, views)

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
            except _RangeNotSatisfiable:  # an empty object: nothing to cut ends from
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

    def _read_local(self, assembly: _Assembly) -> list[list[tuple[int, Any]]]:
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
        """The s3fs filesystem (created on first use; its event loop runs in fsspec's thread)."""
        if self._filesystem is None:
            import s3fs

            options = dict(self.storage_options)
            # Without enough pooled connections, "concurrent" requests queue inside botocore.
            config = dict(options.get("config_kwargs", {}))
            config.setdefault("max_pool_connections", self.concurrency)
            options["config_kwargs"] = config
            self._filesystem = s3fs.S3FileSystem(**options)
        return self._filesystem

    def _run(self, function: Any, *arguments: Any) -> Any:
        from fsspec.asyn import sync

        return sync(self.filesystem().loop, function, *arguments)

    async def _client(self) -> Any:
        filesystem = self.filesystem()
        await filesystem.set_session()
        return await filesystem.get_s3(self.bucket)

    async def _head(self) -> ObjectInfo:
        client = await self._client()
        answer = await self._with_retries(
            lambda: client.head_object(Bucket=self.bucket, Key=self.key), what="HEAD"
        )
        self._count(1, 0, 1)
        return ObjectInfo(size=int(answer["ContentLength"]), etag=answer.get("ETag"))

    def _stream(self, assembly: _Assembly) -> Generator[list[tuple[int, Any]], None, None]:
        """Run the requests of ``assembly`` on the event loop; yield ranges as they complete."""
        loop = self.filesystem().loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise NotImplementedError("RangeStore reads cannot run inside its own event loop")
        arrived: queue.SimpleQueue[Any] = queue.SimpleQueue()
        finished = object()
        future = asyncio.run_coroutine_threadsafe(self._get(assembly, arrived.put), loop)
        future.add_done_callback(lambda _: arrived.put(finished))
        try:
            if assembly.empty:
                yield assembly.empty
            while (batch := arrived.get()) is not finished:
                yield batch
            future.result()
        finally:
            # A failed or abandoned read leaves no request running behind the caller's back.
            future.cancel()

    async def _get(self, assembly: _Assembly, deliver: Callable[[list], None]) -> None:
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
            return await self._with_retries(
                lambda: self._get_with_version(client, spans[number]),
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

    async def _get_with_version(self, client: Any, span: str) -> tuple[bytes, ObjectInfo]:
        """The bytes of ``span`` (``a-b`` or ``-n``, clipped to the object) and the version of the
        object they are of."""
        arguments = {"Bucket": self.bucket, "Key": self.key, "Range": f"bytes={span}"}
        if self.expected is not None and self.expected.etag:
            arguments["IfMatch"] = self.expected.etag
        answer = await client.get_object(**arguments)
        async with answer["Body"] as body:
            data = await body.read()
        # "bytes 0-1048575/310189396"; a server that sent the whole object has no Content-Range.
        total = str(answer.get("ContentRange", "")).rpartition("/")[2]
        size = int(total) if total.isdigit() else int(answer["ContentLength"])
        first, _, last = span.partition("-")
        wanted = min(int(last), size) if not first else min(int(last) + 1, size) - int(first)
        if len(data) != wanted:
            raise ShortReadError(
                f"{self.url}: asked for bytes={span} of {size}, S3 sent {len(data)}"
            )
        return data, ObjectInfo(size=size, etag=answer.get("ETag"))

    async def _get_range(
        self,
        client: Any,
        assembly: _Assembly,
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
        answer = await client.get_object(**arguments)
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
        try:
            async with answer["Body"] as body:
                while (missing := length - assembly.filled[index]) > 0:
                    data = await body.read(min(_READ_SIZE, missing))
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
        call: Any,
        *,
        what: str,
        attempts: list[int] | None = None,
        index: int = 0,
    ) -> Any:
        for attempt in range(self.retries + 1):
            if attempts is not None:
                attempts[index] += 1
            try:
                return await call()
            except Exception as error:  # sorted into final and transient by _translate
                final = self._translate(error, what)
                if final is not None or attempt == self.retries:
                    raise (final or OSError(f"{what} of {self.url} failed: {error}")) from error
            delay = min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt)
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
        raise AssertionError("unreachable")

    def _translate(self, error: Exception, what: str) -> Exception | None:
        """The error to raise at once, or None when ``error`` is worth another attempt."""
        from botocore.exceptions import ClientError

        if isinstance(error, ClientError):
            answer = error.response.get("Error", {})
            code = str(answer.get("Code", ""))
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("PreconditionFailed", "412") or status == 412:
                if self.on_changed is not None:
                    self.on_changed()
                return ObjectChangedError(self._changed_message())
            if code == "InvalidRange" or status == 416:
                return _RangeNotSatisfiable(f"{what} of {self.url}: range not satisfiable")
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
        if isinstance(error, ShortReadError | asyncio.TimeoutError | ConnectionError | OSError):
            return None
        # aiohttp/botocore transport failures (resets, payload errors, endpoint timeouts).
        module = type(error).__module__
        if module.startswith(("aiohttp", "botocore", "aiobotocore")):
            return None
        return error


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
