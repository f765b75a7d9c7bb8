"""An HTTP/1.1 proxy that makes a local S3 behave like a distant one, and counts what passes.

Every reader in the benchmark talks to the local S3 through this proxy, so that:

* **each HTTP request pays a fixed latency** (default 20 ms, typical of S3's first byte in-region):
  the proxy holds each response head for ``latency`` seconds before passing it on. The delay is per
  request, not per connection, so keep-alive connections carrying many requests pay it every time,
  and requests on different connections pay it side by side (concurrency hides it, as on S3);
* **bandwidth can be capped**: ``bandwidth`` (bytes/s) is a *total* cap shared by all connections
  (the client's link), ``connection_bandwidth`` (bytes/s) a cap on *each* connection (S3's
  per-connection throughput); either, both or neither. Only response bodies are paced;
* **a share of answers can stall** (``stall_fraction``, seeded by ``stall_seed``): the head and
  the first half of the body are passed on, then nothing more while the connection stays open, as
  a congested or dying S3 front end does; so the benchmark can measure what the stall guard costs
  on healthy runs (no stalls) and what a stall costs a reader;
* **every request is recorded** (method, target, Range, status, body bytes each way, when it arrived
  and when its response was done). These records are the benchmark's independent measurement of what
  each method did: requests and bytes come from here, not from the method's own counters, and
  :func:`sequential_round_trips` derives the round trips on the critical path from their timing.

It is a reverse proxy for one upstream (``http://host:port``): clients use its ``endpoint_url`` as
their S3 endpoint. HTTP is parsed just enough to find where each request and response ends
(Content-Length, chunked transfer coding, or close); bytes are relayed unchanged. It runs its own
event loop in a background thread, so a client in the same process (tests) or in child processes
(the benchmark) can use it; timestamps are ``time.monotonic()``, comparable across processes on
one machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

DEFAULT_LATENCY = 0.020
# Response bodies are relayed (and paced) in pieces of this size: small enough that a bandwidth cap
# is smooth, large enough that relaying 100 MB/s costs little CPU.
_PIECE = 256 * 1024
# Longest request or response head accepted; S3 heads are around a kilobyte.
_HEAD_LIMIT = 1 << 20
_START_TIMEOUT = 10.0


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP request as it passed through the proxy."""

    connection: int
    method: str
    target: str
    range: str | None
    status: int
    # time.monotonic() when the request head had arrived, and when the response was fully sent.
    start: float
    end: float
    # Body bytes sent to the client (what a reader "fetched") and received from it.
    response_bytes: int
    request_bytes: int
    response_head_bytes: int
    # Whether the proxy stopped this answer halfway (see ``stall_fraction``).
    stalled: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrafficSummary:
    """Totals over a set of request records."""

    requests: int
    bytes: int
    request_bytes: int
    head_bytes: int
    round_trips: int
    by_method: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sequential_round_trips(records: Sequence[RequestRecord]) -> int:
    """The most requests that ran strictly one after another: the round trips on the critical path.

    Requests whose lifetimes overlap ran concurrently and cost one latency between them; requests
    that did not overlap cost one each. The longest chain of pairwise non-overlapping intervals is
    found greedily (earliest end first). Strictly sequential readers get ``len(records)``; one
    concurrent wave gets 1.
    """
    chain, last_end = 0, float("-inf")
    for record in sorted(records, key=lambda r: r.end):
        if record.start >= last_end:
            chain, last_end = chain + 1, record.end
    return chain


def summarize(records: Sequence[RequestRecord]) -> TrafficSummary:
    """Requests, response body bytes, round trips on the critical path, requests per method."""
    by_method: dict[str, int] = {}
    for record in records:
        by_method[record.method] = by_method.get(record.method, 0) + 1
    return TrafficSummary(
        requests=len(records),
        bytes=sum(r.response_bytes for r in records),
        request_bytes=sum(r.request_bytes for r in records),
        head_bytes=sum(r.response_head_bytes for r in records),
        round_trips=sequential_round_trips(records),
        by_method=by_method,
    )


def records_between(
    records: Iterable[RequestRecord], start: float, end: float
) -> list[RequestRecord]:
    """The records of requests that arrived in ``[start, end]`` (monotonic times)."""
    return [r for r in records if start <= r.start <= end]


class _Pacer:
    """Lets ``rate`` bytes/s through, in order of asking; idle time earns no burst credit."""

    def __init__(self, rate: float):
        if rate <= 0:
            raise ValueError(f"a bandwidth must be positive, got {rate}")
        self.rate = rate
        self._next_free = 0.0

    def reserve(self, count: int, now: float) -> float:
        """Book ``count`` bytes on this pacer's virtual clock; returns when they are through.

        Each caller takes the next free slot, so several connections sharing one pacer get the
        rate between them, never more (the loop is single-threaded: no lock needed).
        """
        begin = max(now, self._next_free)
        self._next_free = begin + count / self.rate
        return self._next_free


async def _pace(pacers: Sequence[_Pacer], count: int) -> None:
    """Wait until ``count`` bytes may pass every pacer: the slowest one decides (the caps apply
    together, they do not add up)."""
    if not pacers:
        return
    now = time.monotonic()
    through = max(pacer.reserve(count, now) for pacer in pacers)
    if through > now:
        await asyncio.sleep(through - now)


class _Head:
    """A parsed request or response head: first line, headers (names lower-cased), raw bytes."""

    def __init__(self, raw: bytes):
        self.raw = raw
        lines = raw.decode("latin-1").split("\r\n")
        self.first_line = lines[0]
        self.headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def wants_close(self) -> bool:
        return "close" in (self.header("connection") or "").lower()

    def is_chunked(self) -> bool:
        return "chunked" in (self.header("transfer-encoding") or "").lower()

    def content_length(self) -> int | None:
        value = self.header("content-length")
        return int(value) if value is not None else None

    def without(self, name: str) -> bytes:
        """The raw head without header ``name`` (case-insensitive)."""
        lines = self.raw.split(b"\r\n")
        keep = [lines[0]] + [
            line
            for line in lines[1:]
            if line.split(b":", 1)[0].strip().lower() != name.encode("latin-1")
        ]
        return b"\r\n".join(keep)


async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
    """The next head (up to and including the blank line), or None at a clean end of stream."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if error.partial.strip():
            raise ConnectionError("connection closed in the middle of an HTTP head") from error
        return None


async def _relay_body(
    head: _Head,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    until_close: bool,
    pacers: Sequence[_Pacer] = (),
) -> int:
    """Copy one message body from ``reader`` to ``writer``; returns its payload bytes.

    Framing as HTTP/1.1 defines it: chunked, else Content-Length, else (responses only) until the
    sender closes. Pacers (bandwidth caps) are applied to every piece before it is written.
    """

    async def send(data: bytes) -> None:
        await _pace(pacers, len(data))
        writer.write(data)
        await writer.drain()

    if head.is_chunked():
        payload = 0
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            await send(size_line)
            if size == 0:
                # Trailers (usually none) up to the final blank line.
                while True:
                    line = await reader.readuntil(b"\r\n")
                    await send(line)
                    if line == b"\r\n":
                        return payload
            remaining = size
            while remaining:
                piece = await reader.read(min(_PIECE, remaining))
                if not piece:
                    raise ConnectionError("connection closed inside a chunk")
                remaining -= len(piece)
                await send(piece)
            await send(await reader.readexactly(2))
            payload += size
    length = head.content_length()
    if length is None and not until_close:
        return 0
    payload = 0
    while length is None or payload < length:
        want = _PIECE if length is None else min(_PIECE, length - payload)
        piece = await reader.read(want)
        if not piece:
            if length is None:
                return payload
            raise ConnectionError(f"connection closed after {payload} of {length} body bytes")
        payload += len(piece)
        await send(piece)
    return payload


async def _relay_bytes(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    count: int,
    pacers: Sequence[_Pacer],
) -> int:
    """Copy ``count`` body bytes (fewer if the sender closes first); returns how many."""
    copied = 0
    while copied < count:
        piece = await reader.read(min(_PIECE, count - copied))
        if not piece:
            break
        await _pace(pacers, len(piece))
        writer.write(piece)
        await writer.drain()
        copied += len(piece)
    return copied


def _response_has_body(request_method: str, status: int) -> bool:
    return request_method != "HEAD" and status >= 200 and status not in (204, 304)


class LatencyProxy:
    """A reverse proxy to ``upstream`` adding ``latency`` seconds per request; see the module doc.

    Use as a context manager (or :meth:`start`/:meth:`stop`)::

        with LocalS3() as s3, LatencyProxy(s3.endpoint_url, latency=0.02) as proxy:
            fs = s3fs.S3FileSystem(anon=True, endpoint_url=proxy.endpoint_url)
            ...
            print(proxy.summary())   # requests, bytes, round trips

    ``bandwidth`` caps all connections together, ``connection_bandwidth`` each connection; both are
    in bytes per second of response body. ``stall_fraction`` of the answers with a body stop
    halfway and hold their connection open until the client gives up.
    """

    def __init__(
        self,
        upstream: str,
        *,
        latency: float = DEFAULT_LATENCY,
        bandwidth: float | None = None,
        connection_bandwidth: float | None = None,
        stall_fraction: float = 0.0,
        stall_seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or parts.port is None:
            raise ValueError(f"expected an upstream like http://127.0.0.1:9000, got {upstream!r}")
        if latency < 0:
            raise ValueError(f"latency must be >= 0, got {latency}")
        if not 0 <= stall_fraction <= 1:
            raise ValueError(f"stall_fraction must be within [0, 1], got {stall_fraction}")
        self.stall_fraction = stall_fraction
        self._stall_random = random.Random(stall_seed)
        self.upstream_host, self.upstream_port = parts.hostname, parts.port
        self.latency = latency
        self.bandwidth = bandwidth
        self.connection_bandwidth = connection_bandwidth
        self._host, self._requested_port = host, port
        self._port: int | None = None
        self._records: list[RequestRecord] = []
        # Guards the records and counts requests whose answer is on its way but not yet recorded:
        # a client can hold the last byte before the relay has written its record.
        self._records_lock = threading.Condition()
        self._unrecorded = 0
        self._connections = 0
        self._handlers: set[asyncio.Task[Any]] = set()
        self._errors: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        # Created in the proxy's loop (a pacer's clock is only read there).
        self._total_pacer: _Pacer | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> LatencyProxy:
        """Start serving in a background thread; returns ``self`` once the port is open."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._serve, args=(ready, failure), name="latency-proxy", daemon=True
        )
        self._thread.start()
        if not ready.wait(_START_TIMEOUT) or failure:
            self.stop()
            raise OSError(
                f"the latency proxy did not start: {failure[0] if failure else 'timeout'}"
            )
        return self

    def stop(self) -> None:
        """Stop serving and close every connection. Calling it again is harmless."""
        if self._loop is not None and self._stopped is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(_START_TIMEOUT)
        self._thread = self._loop = self._stopped = None
        self._port = None

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.endpoint_url if self._port is not None else "stopped"
        return f"LatencyProxy({where} -> {self.upstream_host}:{self.upstream_port})"

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>``: what clients use as their S3 endpoint."""
        if self._port is None:
            raise RuntimeError("the proxy is not running: call start() first")
        return f"http://{self._host}:{self._port}"

    # -- measurements ----------------------------------------------------------------------------

    def records(self) -> list[RequestRecord]:
        """A copy of the records of all requests so far (completed ones).

        Waits (up to a few seconds) for requests already being answered to be recorded, so that
        a caller who has received every answer also sees every record.
        """
        with self._records_lock:
            self._records_lock.wait_for(lambda: self._unrecorded == 0, timeout=_START_TIMEOUT)
            return list(self._records)

    def summary(self, since: float | None = None) -> TrafficSummary:
        """Totals over all requests (or those that arrived after monotonic time ``since``)."""
        records = self.records()
        if since is not None:
            records = [r for r in records if r.start >= since]
        return summarize(records)

    def reset(self) -> None:
        """Forget the records so far (after those being answered are recorded)."""
        with self._records_lock:
            self._records_lock.wait_for(lambda: self._unrecorded == 0, timeout=_START_TIMEOUT)
            self._records.clear()

    @property
    def errors(self) -> list[str]:
        """Failures seen while relaying (a client that hung up, an upstream that failed)."""
        return list(self._errors)

    # -- the server ------------------------------------------------------------------------------

    def _serve(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(ready))
        except BaseException as error:  # reported to start() when it happens before ready
            failure.append(error)
            ready.set()
        finally:
            loop.close()

    async def _main(self, ready: threading.Event) -> None:
        self._stopped = asyncio.Event()
        if self.bandwidth:
            self._total_pacer = _Pacer(self.bandwidth)
        server = await asyncio.start_server(
            self._handle, self._host, self._requested_port, limit=_HEAD_LIMIT
        )
        self._port = server.sockets[0].getsockname()[1]
        ready.set()
        async with server:
            await self._stopped.wait()
            server.close()
            handlers = list(self._handlers)
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: Any) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        self._connections += 1
        connection = self._connections
        pacers = [self._total_pacer] if self._total_pacer else []
        if self.connection_bandwidth:
            pacers.append(_Pacer(self.connection_bandwidth))
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                raw = await _read_head(client_reader)
                if raw is None:
                    return
                started = time.monotonic()
                if upstream is None:
                    upstream = await asyncio.open_connection(
                        self.upstream_host, self.upstream_port, limit=_HEAD_LIMIT
                    )
                with self._records_lock:
                    self._unrecorded += 1
                try:
                    keep_open = await self._exchange(
                        connection, raw, started, client_reader, client_writer, upstream, pacers
                    )
                finally:
                    with self._records_lock:
                        self._unrecorded -= 1
                        self._records_lock.notify_all()
                if not keep_open:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
            self._errors.append(f"connection {connection}: {type(error).__name__}: {error}")
        except asyncio.CancelledError:
            pass
        finally:
            for writer in (client_writer, upstream[1] if upstream else None):
                if writer is not None:
                    writer.close()
                    # A handler cancelled at shutdown may be cancelled again while it closes.
                    with contextlib.suppress(Exception, asyncio.CancelledError):
                        await writer.wait_closed()
            if task is not None:
                self._handlers.discard(task)

    def _record(self, record: RequestRecord) -> None:
        with self._records_lock:
            self._records.append(record)

    async def _exchange(
        self,
        connection: int,
        raw: bytes,
        started: float,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        pacers: list[_Pacer],
    ) -> bool:
        """Relay one request and its response; returns whether the connection stays open."""
        upstream_reader, upstream_writer = upstream
        request = _Head(raw)
        method, target = (request.first_line.split(" ") + ["", ""])[:2]
        if (request.header("expect") or "").lower() == "100-continue":
            # Answer the client's wait ourselves; the upstream then gets a plain request.
            client_writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await client_writer.drain()
            upstream_writer.write(request.without("expect"))
        else:
            upstream_writer.write(raw)
        request_bytes = await _relay_body(
            request, client_reader, upstream_writer, until_close=False
        )
        await upstream_writer.drain()

        while True:
            response_raw = await _read_head(upstream_reader)
            if response_raw is None:
                raise ConnectionError(f"the upstream closed before answering {method} {target}")
            response = _Head(response_raw)
            status = int(response.first_line.split(" ")[1])
            if status >= 200 or status == 101:
                break
            # An interim response (100 Continue the upstream sent anyway): pass it on, read on.
            client_writer.write(response_raw)
        def record(response_bytes: int, stalled: bool = False) -> None:
            self._record(
                RequestRecord(
                    connection=connection,
                    method=method,
                    target=target,
                    range=request.header("range"),
                    status=status,
                    start=started,
                    end=time.monotonic(),
                    response_bytes=response_bytes,
                    request_bytes=request_bytes,
                    response_head_bytes=len(response_raw),
                    stalled=stalled,
                )
            )

        # The latency: each request's answer waits before it starts on its way back.
        if self.latency:
            await asyncio.sleep(self.latency)
        client_writer.write(response_raw)
        response_bytes = 0
        length = response.content_length()
        stall = (
            self.stall_fraction > 0
            and _response_has_body(method, status)
            and not response.is_chunked()
            and length is not None
            and length > 1
            and self._stall_random.random() < self.stall_fraction
        )
        if stall:
            assert length is not None
            response_bytes = await _relay_bytes(
                upstream_reader, client_writer, length // 2, pacers
            )
            # Nothing more is sent; the connection stays open until the client gives up on it.
            with contextlib.suppress(ConnectionError):
                while await client_reader.read(_PIECE):
                    pass
            record(response_bytes, stalled=True)
            return False
        if _response_has_body(method, status):
            response_bytes = await _relay_body(
                response, upstream_reader, client_writer, until_close=True, pacers=pacers
            )
        await client_writer.drain()
        record(response_bytes)
        framed = response.is_chunked() or response.content_length() is not None
        no_body = not _response_has_body(method, status)
        return not (
            request.wants_close()
            or response.wants_close()
            or request.first_line.endswith("HTTP/1.0")
            or not (framed or no_body)
        )
