"""Unsigned S3 requests over plain HTTP, for anonymous reads of a public bucket.

A public bucket needs no signature, so a ranged GET is one plain HTTP request. Sending it through
aiohttp instead of botocore saves what a fresh process pays before its first byte: importing s3fs,
aiobotocore and botocore, and building a botocore client from its service model (together about
half a second, measured in issue 16). :class:`AnonymousS3Client` answers the two calls
:class:`~s3ecephys.storage.ranges.RangeStore` makes (``get_object``, ``head_object``) in the shape
botocore gives them, so everything above (retries, stall and first-byte limits, length and
Content-Range checks, If-Match version pinning, request counts) is the same whichever client runs.
Credentials, profiles and any other s3fs option still go through s3fs (see :func:`plain_http_fits`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

_ERROR_CODE = re.compile(rb"<Code>([^<]*)</Code>")
_ERROR_MESSAGE = re.compile(rb"<Message>([^<]*)</Message>")
# The s3fs options a plain-HTTP client honours; any other means the user wants s3fs itself.
_PLAIN_OPTIONS = {"anon", "endpoint_url", "client_kwargs"}
_PLAIN_CLIENT_KWARGS = {"region_name", "endpoint_url"}
_CLOSE_TIMEOUT = 1.0


def plain_http_fits(options: Mapping[str, Any]) -> bool:
    """Whether s3fs ``options`` (limits already taken out) ask only for anonymous reads of an
    endpoint, which unsigned plain-HTTP requests serve as well."""
    client_kwargs = options.get("client_kwargs") or {}
    return (
        options.get("anon") is True
        and set(options) <= _PLAIN_OPTIONS
        and set(client_kwargs) <= _PLAIN_CLIENT_KWARGS
    )


class S3ErrorResponse(Exception):
    """An S3 error answer; ``response`` is shaped as botocore's ``ClientError.response``."""

    def __init__(self, operation: str, status: int, code: str, message: str):
        super().__init__(f"{operation}: HTTP {status} {code} {message}".rstrip())
        self.response = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }


class _Body:
    """A response body as botocore's async streaming body: ``read(n)``, an async context that
    lets the connection go (back to the pool when read to its end, closed otherwise)."""

    def __init__(self, response: Any):
        self._response = response

    async def __aenter__(self) -> _Body:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._response.close()

    async def read(self, amount: int = -1) -> bytes:
        return await self._response.content.read(amount)


class AnonymousS3Client:
    """``get_object`` and ``head_object`` of one endpoint, unsigned, on one event loop."""

    def __init__(self, endpoint_url: str | None, region: str, connections: int, connect: float):
        # Path-style on a given endpoint (a mirror, a local S3); virtual-hosted on AWS, as AWS
        # asks of new clients.
        self._endpoint = endpoint_url.rstrip("/") if endpoint_url else None
        self._region = region
        self._connections = connections
        self._connect = connect
        self._session: Any = None

    def url(self, bucket: str, key: str) -> str:
        path = quote(key, safe="/~")
        if self._endpoint:
            return f"{self._endpoint}/{bucket}/{path}"
        return f"https://{bucket}.s3.{self._region}.amazonaws.com/{path}"

    def _client_session(self) -> Any:
        if self._session is None:
            import aiohttp

            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections),
                # Only the connect phase here: first bytes and stalls are the caller's limits.
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect),
                auto_decompress=False,
                # HTTP(S)_PROXY and NO_PROXY apply, as they do to botocore.
                trust_env=True,
            )
        return self._session

    async def get_object(
        self, *, Bucket: str, Key: str, Range: str | None = None, IfMatch: str | None = None
    ) -> dict[str, Any]:
        """One GET, answered as botocore's ``get_object`` (the body not yet read)."""
        headers = {"Accept-Encoding": "identity"}
        if Range:
            headers["Range"] = Range
        if IfMatch:
            headers["If-Match"] = IfMatch
        response = await self._client_session().get(self.url(Bucket, Key), headers=headers)
        if response.status >= 300:
            try:
                detail = await response.read()
            finally:
                response.close()
            raise _error("GetObject", response, detail)
        return {**_described(response), "Body": _Body(response)}

    async def head_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        """One HEAD, answered as botocore's ``head_object``."""
        async with self._client_session().head(self.url(Bucket, Key)) as response:
            if response.status >= 300:
                raise _error("HeadObject", response, b"")
            return _described(response)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _described(response: Any) -> dict[str, Any]:
    headers = response.headers
    answer: dict[str, Any] = {}
    if "Content-Length" in headers:
        answer["ContentLength"] = int(headers["Content-Length"])
    if "Content-Range" in headers:
        answer["ContentRange"] = headers["Content-Range"]
    if "ETag" in headers:
        answer["ETag"] = headers["ETag"]
    return answer


def _error(operation: str, response: Any, detail: bytes) -> S3ErrorResponse:
    code = _ERROR_CODE.search(detail)
    message = _ERROR_MESSAGE.search(detail)
    text = message[1].decode("utf-8", "replace") if message else ""
    region = response.headers.get("x-amz-bucket-region")
    if response.status == 301 and region:
        # botocore follows this redirect itself; here the user is told how to ask the right region.
        text += (
            f" The bucket is in region {region}: pass "
            f"storage_options={{'client_kwargs': {{'region_name': '{region}'}}}}."
        )
    return S3ErrorResponse(
        operation,
        response.status,
        code[1].decode("utf-8", "replace") if code else str(response.status),
        text.strip(),
    )


# One client per event loop and endpoint settings: its pooled connections are reused by every
# store of the process (a connection costs a round trip, and TLS two more).
_clients: dict[tuple[Any, ...], tuple[asyncio.AbstractEventLoop, AnonymousS3Client]] = {}
_clients_lock = threading.Lock()


def anonymous_client(
    endpoint_url: str | None, region: str, connections: int, connect: float
) -> AnonymousS3Client:
    """The process's client for these settings on the running event loop: the stdlib HTTP/1.1
    client of :mod:`~s3ecephys.storage.http_light`, which spares importing aiohttp and hands to
    this module's aiohttp client only what it cannot serve (proxies)."""
    from s3ecephys.storage.http_light import LightS3Client

    loop = asyncio.get_running_loop()
    key = (id(loop), endpoint_url, region, connections, connect)
    with _clients_lock:
        known = _clients.get(key)
        if known is None or known[0] is not loop:
            known = _clients[key] = (loop, LightS3Client(endpoint_url, region, connections,
                                                         connect))
        return known[1]


@atexit.register
def _close_clients() -> None:
    """Close the pooled connections while their loops still run (aiohttp warns otherwise)."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for loop, client in clients:
        if loop.is_running() and not loop.is_closed():
            future = asyncio.run_coroutine_threadsafe(client.close(), loop)
            with contextlib.suppress(Exception):
                future.result(_CLOSE_TIMEOUT)
