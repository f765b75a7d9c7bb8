"""A local S3 that serves a copy of the dataset as the public bucket serves it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from s3ecephys.storage.location import DEFAULT_BUCKET, DEFAULT_PREFIX, DataLocation

# Any credentials do for moto; they are given to our own client only, never put in os.environ.
_CREDENTIALS = {"aws_access_key_id": "local-s3", "aws_secret_access_key": "local-s3"}
_REGION = "us-west-2"
_STOP_TIMEOUT = 10
_SERVER_MODULE = "s3ecephys.testing.moto_server"


def _public_read_policy(bucket: str) -> str:
    # What makes the real bucket public. moto checks HEAD against "s3:HeadObject" (an action real
    # IAM does not have, it uses s3:GetObject for HEAD), so the policy grants that too.
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "PublicRead",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": ["s3:GetObject", "s3:HeadObject", "s3:ListBucket"],
                    "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                }
            ],
        }
    )


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    """End a server process: closing its stdin asks it to stop; kill it if it does not."""
    if process.stdin is not None:
        process.stdin.close()
    try:
        process.wait(timeout=_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


class LocalS3:
    """moto's S3 on 127.0.0.1 with the bucket ``allen-brain-observatory``: public, versioned.

    Anonymous (unsigned) list, HEAD, GET and ranged GET work as on the real bucket. The server is
    a child process, reachable over TCP from any process (dask workers, a notebook kernel), with
    its own state: two instances never share objects, and the test process's memory and GIL are
    not used to serve requests. Use as a context manager, or call :meth:`start` and :meth:`stop`::

        with LocalS3() as s3:
            s3.upload_directory("dataset/")
            location = s3.location()   # read it like the real bucket

    Objects uploaded by :meth:`upload_directory` above 8 MiB are sent in parts (boto3's default),
    so their ETags are multipart ETags (``"<md5>-<parts>"``); :meth:`put_object` makes one part.
    """

    bucket = DEFAULT_BUCKET

    def __init__(self, port: int = 0):
        """Prepare a server on ``port`` (0: a free port chosen when it starts)."""
        self._requested_port = port
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize | None = None
        self._client: Any = None

    @property
    def pid(self) -> int | None:
        """The server process's id (None before it starts), e.g. to measure what serving costs."""
        return None if self._process is None else self._process.pid

    def start(self) -> LocalS3:
        """Start the server and create the public bucket; returns ``self``."""
        if self._process is not None:
            return self
        command = [sys.executable, "-m", _SERVER_MODULE, "--port", str(self._requested_port)]
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_child_environment(),
        )
        # The finalizer stops the process even if the owner forgets to, at the latest at exit.
        finalizer = weakref.finalize(self, _stop_process, process)
        line = process.stdout.readline() if process.stdout is not None else b""
        message = json.loads(line) if line.strip() else {}
        if "port" not in message:
            finalizer()
            detail = message.get("error") or f"exit code {process.returncode}, see its stderr"
            raise OSError(f"the local S3 server did not start: {detail}")
        self._process, self._finalizer, self._port = process, finalizer, message["port"]
        try:
            self._create_public_bucket()
        except BaseException:
            self.stop()
            raise
        return self

    def _create_public_bucket(self) -> None:
        self.client.create_bucket(
            Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": _REGION}
        )
        self.client.put_bucket_policy(Bucket=self.bucket, Policy=_public_read_policy(self.bucket))
        # The real bucket is versioned: a replaced object keeps its old version, as there.
        self.client.put_bucket_versioning(
            Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"}
        )

    def stop(self) -> None:
        """Stop the server and free its port; its objects are gone. Calling it again is harmless."""
        if self._finalizer is not None:
            self._finalizer()
        self._process = self._finalizer = self._client = self._port = None

    def __enter__(self) -> LocalS3:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self.endpoint_url if self._port is not None else "stopped"
        return f"LocalS3({state})"

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>``: the ``endpoint_url`` for boto3, s3fs, or
        ``$S3ECEPHYS_ENDPOINT_URL``."""
        if self._port is None:
            raise RuntimeError("the local S3 is not running: call start() first")
        return f"http://127.0.0.1:{self._port}"

    @property
    def storage_options(self) -> dict[str, Any]:
        """What a user passes to fsspec/s3fs to read this server anonymously."""
        return {"anon": True, "endpoint_url": self.endpoint_url}

    @property
    def client(self) -> Any:
        """A boto3 S3 client with credentials the server accepts, for uploads and changes."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.session.Session(**_CREDENTIALS).client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name=_REGION,
                config=Config(max_pool_connections=32),
            )
        return self._client

    @contextmanager
    def faults(
        self, *, stall: float = 0.0, silent: float = 0.0, seed: int = 0
    ) -> Iterator[Callable[[], dict[str, int]]]:
        """Within the block, a share ``stall`` of GET answers stops halfway and a share
        ``silent`` of GET and HEAD answers never starts, connections kept open (see
        :mod:`s3ecephys.testing.faults`); yields a function that returns how many requests were
        ``stalled``, ``silenced`` and ``passed``. Held answers are let go when the block ends."""
        self._control_faults({"stall": stall, "silent": silent, "seed": seed})
        try:
            yield lambda: self._control_faults(None)
        finally:
            self._control_faults({})

    def _control_faults(self, settings: dict[str, Any] | None) -> dict[str, int]:
        from s3ecephys.testing.faults import CONTROL_PATH

        data = None if settings is None else json.dumps(settings).encode()
        request = urllib.request.Request(self.endpoint_url + CONTROL_PATH, data=data)
        with urllib.request.urlopen(request, timeout=_STOP_TIMEOUT) as answer:
            return json.loads(answer.read())

    def url(self, key_or_prefix: str = "") -> str:
        """``s3://allen-brain-observatory/<key_or_prefix>``."""
        return f"s3://{self.bucket}/{key_or_prefix}"

    def location(self, prefix: str = DEFAULT_PREFIX) -> DataLocation:
        """A :class:`DataLocation` for ``prefix`` on this server, read anonymously."""
        return DataLocation.resolve(self.url(prefix), self.storage_options)

    def put_object(self, key: str, data: bytes) -> str:
        """Store ``data`` at ``key`` (replacing any object there); returns its ETag."""
        return self.client.put_object(Bucket=self.bucket, Key=key, Body=data)["ETag"]

    def upload_directory(
        self, local_dir: str | os.PathLike[str], prefix: str = DEFAULT_PREFIX
    ) -> int:
        """Upload every file below ``local_dir`` to ``prefix`` + its relative path; returns the
        number of files."""
        root = Path(local_dir)
        if not root.is_dir():
            raise FileNotFoundError(f"no such folder: {root}")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        files = sorted(path for path in root.rglob("*") if path.is_file())
        for path in files:
            self.client.upload_file(
                str(path), self.bucket, prefix + path.relative_to(root).as_posix()
            )
        return len(files)


def _child_environment() -> dict[str, str]:
    # The server must import this package even when it is used from a source tree, uninstalled.
    package_root = str(Path(__file__).resolve().parents[2])
    environment = dict(os.environ)
    paths = [package_root, *filter(None, environment.get("PYTHONPATH", "").split(os.pathsep))]
    environment["PYTHONPATH"] = os.pathsep.join(paths)
    return environment
