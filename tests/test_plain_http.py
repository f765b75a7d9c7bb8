"""Anonymous reads over plain HTTP (no botocore) and signed-capable reads through s3fs keep the
same guarantees: exact bytes, version pinning, errors by kind, stalls resumed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from s3ecephys.storage.http_client import plain_http_fits
from s3ecephys.storage.ranges import ObjectChangedError, RangeStore

PAYLOAD = np.random.default_rng(13).integers(0, 256, 2 * 2**20, dtype=np.uint8).tobytes()
# Any s3fs-only option sends a store through s3fs; an empty config_kwargs changes nothing else.
TRANSPORTS = {"plain HTTP": {}, "s3fs": {"config_kwargs": {}}}


@pytest.fixture(scope="module")
def payload_url(local_s3):
    key = "tests/plain_http/payload.bin"
    local_s3.put_object(key, PAYLOAD)
    return local_s3.url(key)


@pytest.fixture(params=TRANSPORTS.values(), ids=TRANSPORTS.keys())
def options(request, local_s3):
    return {**local_s3.storage_options, **request.param}


def test_the_transport_follows_the_options(local_s3, payload_url):
    plain = RangeStore(payload_url, local_s3.storage_options)
    assert plain.plain_http
    for extra in ({"config_kwargs": {}}, {"key": "k", "secret": "s"}, {"profile": "p"},
                  {"anon": False}, {"client_kwargs": {"verify": False}}):
        assert not RangeStore(payload_url, {**local_s3.storage_options, **extra}).plain_http


@pytest.mark.parametrize(
    ("options", "fits"),
    [
        ({"anon": True, "client_kwargs": {"region_name": "us-west-2"}}, True),
        ({"anon": True, "endpoint_url": "http://127.0.0.1:1"}, True),
        ({"anon": True, "use_ssl": False}, False),
        ({"token": "t", "client_kwargs": {}}, False),
        ({}, False),
    ],
)
def test_plain_http_serves_only_anonymous_reads(options, fits):
    assert plain_http_fits(options) is fits


def test_anonymous_reads_import_neither_botocore_nor_s3fs(local_s3, payload_url):
    script = textwrap.dedent(
        f"""
        import json, sys
        from s3ecephys.storage.ranges import RangeStore
        store = RangeStore({payload_url!r}, {{"endpoint_url": {local_s3.endpoint_url!r}}})
        head, tail = store.fetch_ends(1000, 1000)
        body = store.read(5000, 100)
        print(json.dumps({{"ok": (head, tail, body) == ({PAYLOAD[:1000]!r}, {PAYLOAD[-1000:]!r},
                                                        {PAYLOAD[5000:5100]!r}),
                          "modules": sorted(m for m in ("botocore", "aiobotocore", "s3fs")
                                            if m in sys.modules)}}))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == {"ok": True, "modules": []}


def test_exact_bytes_and_counts_over_either_transport(options, payload_url):
    store = RangeStore(payload_url, options, gap=0)
    ranges = [(offset, 3000) for offset in range(0, len(PAYLOAD) - 3000, 250_000)]
    assert store.fetch(ranges) == [PAYLOAD[o : o + n] for o, n in ranges]
    assert (store.stats.requests, store.stats.round_trips) == (1 + len(ranges), 2)
    assert store.fetch_ends(100, 100) == (PAYLOAD[:100], PAYLOAD[-100:])


def test_errors_by_kind_over_either_transport(options, local_s3):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        RangeStore(local_s3.url("tests/plain_http/missing.bin"), options).info()
    key = "tests/plain_http/replaced.bin"
    local_s3.put_object(key, b"a" * 1000)
    store = RangeStore(local_s3.url(key), options)
    assert store.read(0, 10) == b"a" * 10
    local_s3.put_object(key, b"b" * 1000)
    with pytest.raises(ObjectChangedError, match="changed since it was indexed"):
        store.read(10, 10)


def test_stalls_are_resumed_over_either_transport(options, local_s3, payload_url):
    store = RangeStore(payload_url, {**options, "stall_limit": 0.3}, gap=0)
    store.info()
    ranges = [(offset, 60_000) for offset in range(0, len(PAYLOAD) - 60_000, 100_000)]
    with local_s3.faults(stall=0.2, seed=5) as counts:
        assert store.fetch(ranges) == [PAYLOAD[o : o + n] for o, n in ranges]
        assert counts()["stalled"] >= 1
