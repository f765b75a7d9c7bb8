"""The stdlib HTTP/1.1 client answers the store's two calls as the aiohttp client does: the same
bytes, heads and S3 errors, connections kept alive and never reused in an unknown state."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import shutil
import ssl
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from s3ecephys.storage import http_light
from s3ecephys.storage.http_client import AnonymousS3Client, S3ErrorResponse
from s3ecephys.storage.http_light import LightS3Client, ServerDisconnectedError
from s3ecephys.storage.ranges import RangeStore

PAYLOAD = np.random.default_rng(16).integers(0, 256, 2**20, dtype=np.uint8).tobytes()
KEY = "tests/http_light/payload.bin"
BUCKET = "allen-brain-observatory"
PRIVATE_BUCKET = "s3ecephys-http-light-private"


@pytest.fixture(scope="module")
def payload_url(local_s3):
    local_s3.put_object(KEY, PAYLOAD)
    return local_s3.url(KEY)


def _run(endpoint: str, work, connections: int = 8):
    """``work(client)`` on a new event loop with a light client of ``endpoint``."""

    async def main():
        client = LightS3Client(endpoint, "us-west-2", connections, 2.0)
        try:
            return await work(client)
        finally:
            await client.close()

    return asyncio.run(main())


async def _get(client, key: str = KEY, bucket: str = BUCKET, **arguments) -> tuple[dict, bytes]:
    answer = await client.get_object(Bucket=bucket, Key=key, **arguments)
    async with answer.pop("Body") as body:
        pieces = []
        while piece := await body.read(100_000):
            pieces.append(piece)
    return answer, b"".join(pieces)


def test_anonymous_reads_go_through_the_light_client_without_aiohttp(local_s3, payload_url):
    script = textwrap.dedent(
        f"""
        import hashlib, json, sys
        from s3ecephys.storage.ranges import RangeStore
        store = RangeStore({payload_url!r}, {{"endpoint_url": {local_s3.endpoint_url!r}}}, gap=0)
        ranges = [(offset, 1000) for offset in range(0, {len(PAYLOAD)} - 1000, 7000)]
        bodies = store.fetch(ranges)
        print(json.dumps({{"digest": hashlib.sha256(b"".join(bodies)).hexdigest(),
                          "aiohttp": "aiohttp" in sys.modules}}))
        """
    )
    ranges = [(offset, 1000) for offset in range(0, len(PAYLOAD) - 1000, 7000)]
    digest = hashlib.sha256(b"".join(PAYLOAD[o : o + n] for o, n in ranges)).hexdigest()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == {"digest": digest, "aiohttp": False}


def test_many_concurrent_ranges_are_exact(local_s3, payload_url):
    store = RangeStore(payload_url, local_s3.storage_options, gap=0, concurrency=16)
    ranges = [(offset, 3001) for offset in range(0, len(PAYLOAD) - 3001, 3500)]
    assert store.fetch(ranges) == [PAYLOAD[o : o + n] for o, n in ranges]
    assert store.stats.requests == 1 + len(ranges)


def test_heads_and_answers_are_described_as_botocore_describes_them(local_s3, payload_url):
    async def work(client):
        head = await client.head_object(Bucket=BUCKET, Key=KEY)
        answers = [await _get(client, Range=f"bytes={n * 10}-{n * 10 + 9}") for n in range(20)]
        whole = await _get(client, IfMatch=head["ETag"])
        return head, answers, whole

    head, answers, (described, whole) = _run(local_s3.endpoint_url, work)
    assert head["ContentLength"] == len(PAYLOAD) and head["ETag"].startswith('"')
    for n, (answer, body) in enumerate(answers):
        assert body == PAYLOAD[n * 10 : n * 10 + 10]
        assert answer == {"ContentLength": 10, "ETag": head["ETag"],
                          "ContentRange": f"bytes {n * 10}-{n * 10 + 9}/{len(PAYLOAD)}"}
    assert whole == PAYLOAD and described["ContentLength"] == len(PAYLOAD)


def _errors(client_type, endpoint: str) -> list[tuple[str, dict]]:
    async def work(client):
        calls = [
            lambda: client.head_object(Bucket=BUCKET, Key="tests/http_light/missing"),
            lambda: _get(client, key="tests/http_light/missing"),
            lambda: _get(client, bucket=PRIVATE_BUCKET, key="secret"),
            lambda: client.head_object(Bucket=PRIVATE_BUCKET, Key="secret"),
            lambda: _get(client, IfMatch='"0123456789abcdef0123456789abcdef"'),
            lambda: _get(client, Range=f"bytes={len(PAYLOAD) + 10}-{len(PAYLOAD) + 20}"),
        ]
        found = []
        for call in calls:
            with pytest.raises(S3ErrorResponse) as error:
                await call()
            found.append((str(error.value), error.value.response))
        return found

    async def main():
        client = client_type(endpoint, "us-west-2", 4, 2.0)
        try:
            return await work(client)
        finally:
            await client.close()

    return asyncio.run(main())


def test_s3_errors_are_mapped_as_the_aiohttp_client_maps_them(local_s3, payload_url):
    local_s3.client.create_bucket(
        Bucket=PRIVATE_BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"}
    )
    local_s3.client.put_object(Bucket=PRIVATE_BUCKET, Key="secret", Body=b"x")
    light = _errors(LightS3Client, local_s3.endpoint_url)
    assert light == _errors(AnonymousS3Client, local_s3.endpoint_url)
    statuses = [response["ResponseMetadata"]["HTTPStatusCode"] for _, response in light]
    assert statuses == [404, 404, 403, 403, 412, 416]
    assert light[1][1]["Error"]["Code"] == "NoSuchKey"
    assert light[4][1]["Error"]["Code"] == "PreconditionFailed"


class ScriptedServer:
    """A loopback HTTP server: connection n answers its requests from ``scripts[n]`` in turn;
    ``None`` closes the connection on receiving the request, without an answer; connections past
    the scripts answer every request with ``repeat``, kept alive. (The local S3's server closes
    every connection after one answer, so it cannot show reuse.)"""

    def __init__(self, scripts: list[list[bytes | None]], repeat: bytes = b"",
                 tls: ssl.SSLContext | None = None):
        self.scripts, self.repeat, self.connections, self.requests = scripts, repeat, 0, []
        self.tls = tls

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc_info: object) -> None:
        self._server.close()

    async def _serve(self, reader, writer) -> None:
        scripted = self.connections < len(self.scripts)
        script = self.scripts[self.connections] if scripted else itertools.repeat(self.repeat)
        self.connections += 1
        try:
            for answer in script:
                try:
                    self.requests.append(await reader.readuntil(b"\r\n\r\n"))
                except asyncio.IncompleteReadError:  # the client closed it
                    break
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
        finally:
            writer.close()


def _answer(status: str, body: bytes, *, chunks: int = 0) -> bytes:
    if not chunks:
        return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    size = -(-len(body) // chunks)
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    framed = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(part), part) for part in parts)
    return (f"HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + framed
            + b"0\r\nX-Trailer: t\r\n\r\n")


def test_concurrent_requests_share_as_many_kept_alive_connections_as_allowed():
    server = ScriptedServer([], repeat=_answer("200 OK", b"0123456789"))

    async def work():
        async with server as endpoint:
            client = LightS3Client(endpoint, "us-west-2", 3, 2.0)
            wave = [_get(client, key="k", bucket="b", Range=f"bytes={n}-{n}") for n in range(30)]
            answers = await asyncio.gather(*wave)
            answers += [await _get(client, key="k", bucket="b") for _ in range(5)]
            await client.close()
            return [body for _, body in answers]

    assert asyncio.run(work()) == [b"0123456789"] * 35
    assert server.connections == 3 and len(server.requests) == 35
    assert all(b"\r\nRange: bytes=" in request for request in server.requests[:30])


def test_a_chunked_error_body_is_read_and_its_connection_reused():
    error = b"<Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>"
    server = ScriptedServer([[_answer("503 Slow Down", error, chunks=4),
                              _answer("200 OK", b"abc", chunks=2)]])

    async def work():
        async with server as endpoint:
            client = LightS3Client(endpoint, "us-west-2", 4, 2.0)
            with pytest.raises(S3ErrorResponse) as raised:
                await _get(client, key="k", bucket="b")
            answer = await _get(client, key="k", bucket="b")
            await client.close()
            return raised.value, answer

    raised, (described, body) = asyncio.run(work())
    assert raised.response == {"Error": {"Code": "SlowDown", "Message": "Reduce your rate"},
                               "ResponseMetadata": {"HTTPStatusCode": 503}}
    assert (described, body) == ({}, b"abc")
    assert server.connections == 1 and len(server.requests) == 2
    assert server.requests[0].startswith(b"GET /b/k HTTP/1.1\r\nHost: 127.0.0.1:")


def test_a_kept_alive_connection_closed_by_the_server_is_replaced_transparently():
    server = ScriptedServer([[_answer("200 OK", b"first"), None], [_answer("200 OK", b"second")]])

    async def work():
        async with server as endpoint:
            client = LightS3Client(endpoint, "us-west-2", 4, 2.0)
            answers = [(await _get(client, key="k", bucket="b"))[1] for _ in range(2)]
            await client.close()
            return answers

    assert asyncio.run(work()) == [b"first", b"second"]
    assert server.connections == 2 and len(server.requests) == 3


def test_a_new_connection_closed_before_or_inside_an_answer_is_a_retryable_error():
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 40
    server = ScriptedServer([[None], [cut], [_answer("200 OK", b"ok")]])

    async def work():
        async with server as endpoint:
            client = LightS3Client(endpoint, "us-west-2", 4, 2.0)
            with pytest.raises(ServerDisconnectedError, match="before its answer"):
                await client.get_object(Bucket="b", Key="k")
            with pytest.raises(ServerDisconnectedError, match="60 bytes short"):
                await _get(client, key="k", bucket="b")
            answer = await _get(client, key="k", bucket="b")
            await client.close()
            return answer

    assert asyncio.run(work())[1] == b"ok"
    # The cut answer's connection was not pooled: the last request needed a third one.
    assert server.connections == 3
    assert issubclass(ServerDisconnectedError, ConnectionError)


def test_a_refused_connection_reads_as_no_answer(monkeypatch):
    with pytest.raises(ConnectionRefusedError, match="cannot connect to 127.0.0.1:9"):
        _run("http://127.0.0.1:9", lambda client: client.head_object(Bucket="b", Key="k"))


def test_proxies_send_requests_through_aiohttp(monkeypatch):
    client = LightS3Client("http://127.0.0.1:9", "us-west-2", 4, 1.0)
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1")  # aiohttp ignores it too
    assert not client._through_proxy("http://127.0.0.1:9/b/k")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:1")
    assert not LightS3Client(None, "us-west-2", 4, 1.0)._through_proxy("http://h/b/k")
    assert LightS3Client(None, "us-west-2", 4, 1.0)._through_proxy("https://h/b/k")
    monkeypatch.setenv("NO_PROXY", "h")
    assert not LightS3Client(None, "us-west-2", 4, 1.0)._through_proxy("https://h/b/k")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")
    with pytest.raises(Exception) as error:  # noqa: B017 - whichever aiohttp raises
        _run("http://127.0.0.1:9", lambda client: client.head_object(Bucket="b", Key="k"))
    assert type(error.value).__module__.startswith("aiohttp")


def test_https_verifies_certificates_and_host_names(tmp_path, monkeypatch):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    certificates = {}
    for name in ("right", "wrong"):
        cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=test",
             "-addext", f"subjectAltName=IP:{'127.0.0.1' if name == 'right' else '10.9.9.9'}",
             "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True, timeout=30,
        )
        certificates[name] = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        certificates[name].load_cert_chain(cert, key)

    async def read_over(tls: ssl.SSLContext) -> bytes:
        async with ScriptedServer([[_answer("200 OK", b"secret")]], tls=tls) as endpoint:
            client = LightS3Client(endpoint, "us-west-2", 4, 2.0)
            try:
                return (await _get(client, key="k", bucket="b"))[1]
            finally:
                await client.close()

    # The system's CAs do not know the test certificate.
    with pytest.raises(ConnectionRefusedError, match="CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(read_over(certificates["right"]))
    trusting = ssl.create_default_context(cafile=str(tmp_path / "right.pem"))
    monkeypatch.setattr(http_light, "_ssl_context", trusting)
    assert asyncio.run(read_over(certificates["right"])) == b"secret"
    # Trusted, but issued to another address: the host name check refuses it.
    trusting.load_verify_locations(cafile=str(tmp_path / "wrong.pem"))
    with pytest.raises(ConnectionRefusedError, match="CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(read_over(certificates["wrong"]))
