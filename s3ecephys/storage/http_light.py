"""Anonymous S3 GETs and HEADs over HTTP/1.1 on asyncio streams, without importing aiohttp.

Importing aiohttp costs a fresh process about 0.1 s before its first byte (benchmarks/README.md),
more than the round trip the first read should cost (issue 16). Unsigned range GETs need only a
small part of HTTP/1.1, written here on the standard library: :class:`LightS3Client` answers
``get_object`` and ``head_object`` as :class:`~s3ecephys.storage.http_client.AnonymousS3Client`
does (same URLs, answer shape and S3 error codes), with

- a keep-alive pool per (scheme, host, port), at most ``connections`` requests in flight at once
  (the store's concurrency); a connection goes back to the pool only when its answer was read to
  its end without error, and a request whose reused connection turns out closed by the server
  before any byte of the answer is sent again once on a new connection (GET and HEAD are
  idempotent);
- bodies framed by ``Content-Length`` (handed out in pieces as they arrive, so that the caller's
  stall limit sees every byte), ``Transfer-Encoding: chunked`` (S3 error bodies may be), or the
  end of the connection;
- https with certificate and host name verification (``ssl.create_default_context()``);
- connection failures raised as :class:`ConnectFailedError` (a ``ConnectionRefusedError``) and a
  connection that does not open within ``connect`` seconds as :class:`ConnectTimeoutError` (a
  ``FirstByteTimeoutError``), which the store takes as "the endpoint did not answer", as it takes
  aiohttp's ``ClientConnectorError``; other transport failures are ``ConnectionError``\\ s, retried.

What it does not do, so aiohttp (the parent class) still serves those requests: proxies. When
``urllib.request.getproxies()`` names an http or https proxy for a request's scheme (the
``HTTP_PROXY``/``HTTPS_PROXY`` variables, or the system settings on macOS and Windows) and the
host is not bypassed (``NO_PROXY``), the request goes through aiohttp with ``trust_env`` as before.
``ALL_PROXY`` alone changes nothing, as with aiohttp, which honours only http and https proxies.
Neither client decompresses (``Accept-Encoding: identity``), follows redirects or sends
credentials; a ``.netrc`` entry, which aiohttp's ``trust_env`` would send as basic auth, is not
sent (a public bucket ignores it).
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
from collections import deque
from typing import Any
from urllib.parse import urlsplit

from s3ecephys.storage.attempts import FirstByteTimeoutError
from s3ecephys.storage.http_client import AnonymousS3Client, _described, _error

# Bytes a connection's reader buffers before it stops reading the socket: as large as the store's
# reads (s3_requests.py _READ_SIZE), so that one read of a large body is not cut into many wake-ups.
_BUFFER = 2**20
_DEFAULT_PORTS = {"http": 80, "https": 443}
_ssl_context: ssl.SSLContext | None = None


class ConnectFailedError(ConnectionRefusedError):
    """No connection to the endpoint could be made (refused, unresolvable, unreachable, TLS
    handshake or certificate refused)."""


class ConnectTimeoutError(FirstByteTimeoutError):
    """No connection to the endpoint opened within the connect timeout."""


class ServerDisconnectedError(ConnectionError):
    """The server closed the connection before its answer was complete, or sent no HTTP."""


class _Headers(dict):
    """Response headers by lower-cased name; looked up case-insensitively."""

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)


class _Connection:
    """One HTTP/1.1 connection and whether it came from the pool (it may be closed by now)."""

    def __init__(self, key: tuple[str, str, int], reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, reused: bool):
        self.key, self.reader, self.writer, self.reused = key, reader, writer, reused

    def close(self) -> None:
        self.writer.close()


class _Response:
    """A status, headers and a body being read from one connection; the connection goes back to
    ``pool`` when the body was read to its end, and is closed otherwise."""

    def __init__(self, pool: _Pool, connection: _Connection, status: int, headers: _Headers,
                 length: int | None, chunked: bool, keep: bool):
        self._pool, self._connection = pool, connection
        self.status, self.headers = status, headers
        self._remaining = length  # None: until the connection ends (or chunk by chunk)
        self._chunked, self._chunk = chunked, 0
        self._keep = keep
        self._done = length == 0
        self._finished = False

    async def read(self, amount: int = -1) -> bytes:
        """Up to ``amount`` bytes (all that is left when negative) as soon as some have arrived;
        ``b""`` at the end of the body."""
        if amount < 0:
            pieces = []
            while piece := await self.read(_BUFFER):
                pieces.append(piece)
            return b"".join(pieces)
        if self._done or amount == 0:
            return b""
        try:
            data = await self._read_some(amount)
        except BaseException:
            self._done = self._keep = False  # the connection is somewhere inside the body
            self.release()
            raise
        if self._done:
            self.release()
        return data

    async def _read_some(self, amount: int) -> bytes:
        reader = self._connection.reader
        if self._chunked:
            if self._chunk == 0 and not await self._next_chunk():
                return b""
            data = await reader.read(min(amount, self._chunk))
            self._chunk -= len(data)
            if not data:
                raise ServerDisconnectedError("the connection ended inside a chunk")
            if self._chunk == 0:
                await _read_line(reader)  # the CRLF after a chunk's data
            return data
        if self._remaining is None:
            data = await reader.read(amount)
            self._done = not data
            return data
        data = await reader.read(min(amount, self._remaining))
        if not data:
            raise ServerDisconnectedError(f"the connection ended {self._remaining} bytes short")
        self._remaining -= len(data)
        self._done = self._remaining == 0
        return data

    async def _next_chunk(self) -> bool:
        """Read the next chunk's size line; at the last (empty) chunk read the trailers and
        return False."""
        line = await _read_line(self._connection.reader)
        try:
            self._chunk = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ServerDisconnectedError(f"bad chunk size line {line[:40]!r}") from None
        if self._chunk > 0:
            return True
        while await _read_line(self._connection.reader):
            pass
        self._done = True
        return False

    def release(self) -> None:
        """Give the connection back (to the pool when the body is complete and the server
        allows it), once."""
        if not self._finished:
            self._finished = True
            self._pool.give_back(self._connection, self._done and self._keep)

    def __del__(self) -> None:
        # An answer dropped unread (a wrong length seen before its body was touched) must not keep
        # its connection or its slot in flight.
        if not self._finished:
            loop = self._pool.loop
            if not loop.is_closed():
                loop.call_soon_threadsafe(self.release)


class _Body:
    """A response body as botocore's async streaming body: ``read(n)`` and an async context that
    lets the connection go."""

    def __init__(self, response: _Response):
        self._response = response

    async def __aenter__(self) -> _Body:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._response.release()

    async def read(self, amount: int = -1) -> bytes:
        return await self._response.read(amount)


class _Pool:
    """Kept-alive connections per (scheme, host, port), and a bound on requests in flight."""

    def __init__(self, connections: int, connect: float):
        self.loop = asyncio.get_running_loop()
        self._slots = asyncio.Semaphore(connections)
        self._connections, self._connect = connections, connect
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}

    async def take(self, key: tuple[str, str, int], fresh: bool = False) -> _Connection:
        """A connection to ``key`` (a pooled one unless ``fresh``); holds a slot until given
        back."""
        await self._slots.acquire()
        try:
            idle = self._idle.get(key)
            while idle and not fresh:
                connection = idle.pop()
                if not connection.reader.at_eof() and not connection.writer.is_closing():
                    connection.reused = True
                    return connection
                connection.close()
            return await self._open(key)
        except BaseException:
            self._slots.release()
            raise

    async def _open(self, key: tuple[str, str, int]) -> _Connection:
        scheme, host, port = key
        context = _verified_context() if scheme == "https" else None
        scope = asyncio.timeout(self._connect)
        try:
            async with scope:
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=context, limit=_BUFFER,
                    server_hostname=host if context else None,
                )
        except TimeoutError:
            if scope.expired():
                raise ConnectTimeoutError(
                    f"no connection to {host}:{port} within {self._connect:g} s"
                ) from None
            raise
        except OSError as error:  # refused, unresolvable, unreachable, TLS refused
            raise ConnectFailedError(f"cannot connect to {host}:{port}: {error}") from error
        return _Connection(key, reader, writer, reused=False)

    def give_back(self, connection: _Connection, reusable: bool) -> None:
        self._slots.release()
        idle = self._idle.setdefault(connection.key, deque())
        if reusable and len(idle) < self._connections and not connection.writer.is_closing():
            idle.append(connection)
        else:
            connection.close()

    def close(self) -> None:
        for idle in self._idle.values():
            while idle:
                idle.pop().close()


class LightS3Client(AnonymousS3Client):
    """:class:`AnonymousS3Client`'s two calls over the stdlib HTTP/1.1 client of this module,
    through aiohttp only where a proxy applies (see the module doc)."""

    def __init__(self, endpoint_url: str | None, region: str, connections: int, connect: float):
        super().__init__(endpoint_url, region, connections, connect)
        self._pool: _Pool | None = None
        self._proxied: dict[tuple[str, str], bool] = {}

    async def get_object(
        self, *, Bucket: str, Key: str, Range: str | None = None, IfMatch: str | None = None
    ) -> dict[str, Any]:
        """One GET, answered as botocore's ``get_object`` (the body not yet read)."""
        url = self.url(Bucket, Key)
        if self._through_proxy(url):
            return await super().get_object(Bucket=Bucket, Key=Key, Range=Range, IfMatch=IfMatch)
        headers = {"Range": Range, "If-Match": IfMatch}
        response = await self._request("GET", url, headers)
        if response.status >= 300:
            try:
                detail = await response.read()
            finally:
                response.release()
            raise _error("GetObject", response, detail)
        return {**_described(response), "Body": _Body(response)}

    async def head_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        """One HEAD, answered as botocore's ``head_object``."""
        url = self.url(Bucket, Key)
        if self._through_proxy(url):
            return await super().head_object(Bucket=Bucket, Key=Key)
        response = await self._request("HEAD", url, {})
        response.release()
        if response.status >= 300:
            raise _error("HeadObject", response, b"")
        return _described(response)

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        await super().close()

    def _through_proxy(self, url: str) -> bool:
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "")
        if key not in self._proxied:
            proxy = urllib.request.getproxies().get(parts.scheme)
            self._proxied[key] = bool(proxy) and not urllib.request.proxy_bypass(key[1])
        return self._proxied[key]

    async def _request(self, method: str, url: str, headers: dict[str, str | None]) -> _Response:
        parts = urlsplit(url)
        scheme, host = parts.scheme, parts.hostname or ""
        port = parts.port or _DEFAULT_PORTS[scheme]
        shown = f"[{host}]" if ":" in host else host
        if port != _DEFAULT_PORTS[scheme]:
            shown += f":{port}"
        lines = [f"{method} {parts.path or '/'} HTTP/1.1", f"Host: {shown}",
                 "Accept-Encoding: identity", "User-Agent: s3ecephys"]
        for name, value in headers.items():
            if value is not None:
                if "\r" in value or "\n" in value:
                    raise ValueError(f"line break in the {name} header {value!r}")
                lines.append(f"{name}: {value}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if self._pool is None:
            self._pool = _Pool(self._connections, self._connect)
        pool, key = self._pool, (scheme, host, port)
        connection = await pool.take(key)
        while True:
            try:
                return await _exchange(pool, connection, request, method)
            except (ConnectionError, asyncio.IncompleteReadError) as error:
                pool.give_back(connection, reusable=False)
                if not (connection.reused and _before_answer(error)):
                    if isinstance(error, ConnectionError):
                        raise
                    raise ServerDisconnectedError(
                        "the server closed the connection before its answer ended"
                    ) from error
                # A kept-alive connection the server had closed: once more on a new one.
                connection = await pool.take(key, fresh=True)
            except BaseException:  # cancelled (a first-byte timeout) or worse: state unknown
                pool.give_back(connection, reusable=False)
                raise


async def _exchange(pool: _Pool, connection: _Connection, request: bytes,
                    method: str) -> _Response:
    """Send ``request`` and read its answer's head (skipping interim 1xx answers)."""
    connection.writer.write(request)
    await connection.writer.drain()
    while True:
        try:
            head = await connection.reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise ServerDisconnectedError(f"an answer head longer than {_BUFFER} bytes") from None
        status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        version, _, rest = status_line.partition(" ")
        if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
            raise ServerDisconnectedError(f"not an HTTP/1.x answer: {status_line[:80]!r}")
        status = int(rest[:3])
        if not 100 <= status < 200:
            break
    headers = _Headers()
    for line in header_lines:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    tokens = {token.strip() for token in headers.get("connection", "").lower().split(",")}
    keep = "close" not in tokens and (version != "HTTP/1.0" or "keep-alive" in tokens)
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    if method == "HEAD" or status in (204, 304):
        length: int | None = 0
    elif chunked:
        length = None
    elif headers.get("content-length", "").isdigit():
        length = int(headers["content-length"])
    else:
        length, keep = None, False  # the body ends with the connection
    return _Response(pool, connection, status, headers, length, chunked, keep)


def _before_answer(error: BaseException) -> bool:
    """Whether ``error`` came before any byte of the answer (so the request may be sent again)."""
    if isinstance(error, asyncio.IncompleteReadError):
        return not error.partial
    return isinstance(error, ConnectionResetError | BrokenPipeError | ConnectionAbortedError)


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    try:
        return (await reader.readuntil(b"\r\n"))[:-2]
    except asyncio.IncompleteReadError:
        raise ServerDisconnectedError("the connection ended inside a chunked body") from None


def _verified_context() -> ssl.SSLContext:
    """One context for the process: loading the system's CA certificates takes milliseconds."""
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = ssl.create_default_context()
    return _ssl_context
