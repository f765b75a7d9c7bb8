"""The process behind :class:`~s3ecephys.testing.LocalS3`: moto's S3 over HTTP on 127.0.0.1.

Run as ``python -m s3ecephys.testing.moto_server --port 0``. The process binds, writes one JSON
line to stdout (``{"port": N}`` or ``{"error": "..."}``) and serves until its stdin is closed, which
happens when the parent stops it or dies, so no server outlives its owner.

Moto answers a ranged GET by reading the whole object and slicing it, so every small read of a large
object costs a copy of all of it. :class:`RangeReads` serves those reads from the stored object
directly and leaves every decision (permissions, versions, conditions, the range arithmetic, the
headers) to moto.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

_SINGLE_RANGE = re.compile(r"bytes=\d*-\d*")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/\d+")
# Query parameters that do not change what a GET returns ("x-id" is added by botocore).
_PLAIN_GET_PARAMETERS = {"x-id", "versionId"}

StartResponse = Callable[..., Any]


class RangeReads:
    """WSGI middleware: answer single-range GETs without moto's whole-object read.

    The request is first asked of moto as a HEAD with the same Range header. Only when moto answers
    206 are the bytes read here, from the object moto described (same ETag). Anything else goes to
    moto as it came, so errors, conditions and unusual requests behave exactly as moto makes them.
    """

    def __init__(self, app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]]):
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not self._is_plain_ranged_get(environ):
            return self._app(environ, start_response)
        status, headers = self._head(environ)
        body = self._read_described_range(environ, status, headers)
        if body is None:
            return self._app(environ, start_response)
        start_response(status, headers)
        return [body]

    @staticmethod
    def _is_plain_ranged_get(environ: dict[str, Any]) -> bool:
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        return (
            environ["REQUEST_METHOD"] == "GET"
            and _SINGLE_RANGE.fullmatch(environ.get("HTTP_RANGE", "")) is not None
            and set(query) <= _PLAIN_GET_PARAMETERS
        )

    def _head(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
        answer: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer.update(status=status, headers=headers)
            return lambda data: None

        result = self._app({**environ, "REQUEST_METHOD": "HEAD"}, capture)
        try:
            for _ in result:
                pass
        finally:
            if hasattr(result, "close"):
                result.close()
        return answer["status"], answer["headers"]

    @staticmethod
    def _read_described_range(
        environ: dict[str, Any], status: str, headers: list[tuple[str, str]]
    ) -> bytes | None:
        """The bytes moto's 206 answer describes, or None to let moto answer the GET itself."""
        if not status.startswith("206"):
            return None
        described = {name.lower(): value for name, value in headers}
        match = _CONTENT_RANGE.fullmatch(described.get("content-range", ""))
        if match is None:
            return None
        first, last = int(match[1]), int(match[2])
        # WSGI hands the path over as latin-1 text of its bytes; keys are UTF-8.
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
        bucket_name, _, key_name = path.lstrip("/").partition("/")
        try:
            from moto.s3.models import s3_backends

            partition, account = s3_backends.bucket_accounts[bucket_name]
            key = s3_backends[account][partition].get_object(
                bucket_name, key_name, version_id=described.get("x-amz-version-id")
            )
            # The ETag ties the bytes read here to the object moto described.
            if key is None or key.etag != described.get("etag"):
                return None
            with key.lock:
                key._value_buffer.seek(first)
                body = key._value_buffer.read(last - first + 1)
        except (KeyError, AttributeError, ValueError):
            # Another moto version, a virtual-host-style request or a key deleted meanwhile:
            # moto's own (slower) answer is still right.
            return None
        return body if len(body) == last - first + 1 else None


def _quiet_handler() -> type:
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class QuietRequestHandler(MotoRequestHandler):
        """Moto's handler without a log line per request (errors are still logged)."""

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            pass

    return QuietRequestHandler


def _announce(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """Serve moto's S3 on 127.0.0.1 until stdin closes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)

    # Ctrl-C in a terminal reaches the whole process group; the parent decides when to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    # Bound here rather than by werkzeug, which prints and exits when the port is taken.
    listener = socket.socket()
    # As werkzeug would: a stopped server's port can be taken again at once.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", args.port))
        listener.listen(128)
    except OSError as error:
        _announce({"error": f"cannot listen on 127.0.0.1:{args.port}: {error.strerror}"})
        return 1
    port = listener.getsockname()[1]
    from s3ecephys.testing.faults import FaultInjection

    # Outermost, so that a stalled answer is cut whichever layer produced it.
    app = FaultInjection(RangeReads(DomainDispatcherApplication(create_backend_app)))
    server = make_server(
        "127.0.0.1",
        port,
        app,
        threaded=True,
        request_handler=_quiet_handler(),
        fd=listener.fileno(),
    )
    thread = threading.Thread(target=server.serve_forever, name="moto-s3", daemon=True)
    thread.start()
    _announce({"port": port})
    # Whatever moto prints from now on must not fill a pipe nobody reads.
    sys.stdout = sys.stderr

    # Returning ends the process and with it the daemon server threads and open connections at
    # once; a graceful shutdown() would wait for serve_forever's next poll.
    sys.stdin.buffer.read()
    return 0


if __name__ == "__main__":
    sys.exit(main())
