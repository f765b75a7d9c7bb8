"""Answers that stop halfway or never start: every read still returns the right bytes within
seconds, or fails within its budget with an error that says what was tried."""

from __future__ import annotations

import time

import h5py
import numpy as np
import pandas as pd
import pytest

from s3ecephys import EcephysProjectCache, open_hdf5
from s3ecephys.storage.download import download_file
from s3ecephys.storage.limits import (
    STALL_CAP,
    STALL_FLOOR,
    EndpointHealth,
    TransferLimits,
    split_limits,
)
from s3ecephys.storage.location import EndpointUnreachableError
from s3ecephys.storage.ranges import RangeStore, ReadFailedError

PAYLOAD = np.random.default_rng(11).integers(0, 256, 3 * 2**20, dtype=np.uint8).tobytes()
# Short limits keep the tests seconds-long; the defaults are tested on their own below.
FAST = {"stall_limit": 0.5, "first_byte_timeout": 1.0, "connect_timeout": 1.0}
# Every read, whatever the faults, must end within this.
READ_BOUND = 10.0


@pytest.fixture(scope="module")
def payload_url(local_s3):
    key = "tests/stalls/payload.bin"
    local_s3.put_object(key, PAYLOAD)
    # The endpoint has answered in this process: faults are now retried, not taken for "offline".
    RangeStore(local_s3.url(key), local_s3.storage_options).info()
    return local_s3.url(key)


@pytest.fixture(scope="module")
def lfp_like(local_s3, tmp_path_factory):
    values = np.random.default_rng(3).standard_normal((20_000, 32)).astype(np.float32)
    path = tmp_path_factory.mktemp("stalls") / "lfp.h5"
    with h5py.File(path, "w") as file:
        file.create_dataset("data", data=values, chunks=(1000, 8), compression="gzip")
    key = "tests/stalls/lfp.h5"
    local_s3.put_object(key, path.read_bytes())
    return local_s3.url(key), values


def test_every_random_read_is_right_and_bounded_under_ten_percent_stalls(
    local_s3, lfp_like, payload_url, tmp_path
):
    url, values = lfp_like
    rng = np.random.default_rng(5)
    options = {**local_s3.storage_options, **FAST}
    slowest = 0.0
    with local_s3.faults(stall=0.1, seed=1) as counts:
        # A cold open (its ends, then metadata waves) under stalls too.
        started = time.monotonic()
        file = open_hdf5(url, storage_options=options, cache_dir=tmp_path)
        data = file["data"]
        slowest = time.monotonic() - started
        for _ in range(30):
            first = int(rng.integers(0, values.shape[0] - 1))
            stop = int(rng.integers(first + 1, min(values.shape[0], first + 6000) + 1))
            channels = sorted(rng.choice(values.shape[1], size=int(rng.integers(1, 9)),
                                         replace=False))
            started = time.monotonic()
            got = data[first:stop, channels]
            slowest = max(slowest, time.monotonic() - started)
            np.testing.assert_array_equal(got, values[first:stop][:, channels])
        stalled = counts()["stalled"]
    assert stalled > 0, "no answer was stalled: the test tested nothing"
    assert slowest < READ_BOUND


def test_the_default_adaptive_limit_resumes_a_stalled_wave_within_seconds(local_s3, payload_url):
    store = RangeStore(payload_url, local_s3.storage_options, gap=0)
    store.info()
    ranges = [(offset, 100_000) for offset in range(0, 3 * 2**20 - 100_000, 300_000)]
    # Seed 4: one of the first ten answers stalls.
    with local_s3.faults(stall=0.1, seed=4) as counts:
        started = time.monotonic()
        assert store.fetch(ranges) == [PAYLOAD[o : o + n] for o, n in ranges]
        took = time.monotonic() - started
        assert counts()["stalled"] >= 1
    # The stalled answer was waited for at least the floor, and the wave still ended in time.
    assert STALL_FLOOR <= took < READ_BOUND


def test_answers_that_never_start_are_asked_again(local_s3, payload_url):
    store = RangeStore(payload_url, {**local_s3.storage_options, **FAST}, gap=0)
    store.info()
    ranges = [(offset, 1000) for offset in range(0, 3 * 2**20, 200_000)]
    with local_s3.faults(silent=0.2, seed=2) as counts:
        started = time.monotonic()
        assert store.fetch(ranges) == [PAYLOAD[o : o + n] for o, n in ranges]
        assert counts()["silenced"] >= 1
    assert time.monotonic() - started < READ_BOUND


def test_a_read_that_cannot_complete_fails_in_bounded_time_saying_what_was_tried(
    local_s3, payload_url
):
    options = {**local_s3.storage_options, "stall_limit": 0.2, "retry_budget": 1.5}
    store = RangeStore(payload_url, options)
    store.info()
    with local_s3.faults(stall=1.0):
        started = time.monotonic()
        with pytest.raises(ReadFailedError) as error:
            store.read(1000, 500_000)
        took = time.monotonic() - started
    message = str(error.value)
    assert payload_url in message and "bytes 1000-500999" in message
    assert "StalledError: no new byte for 0.2 s" in message
    assert "attempts" in message and "retry_budget 1.5 s" in message
    # The budget stops new attempts; the last one ends within its stall limit.
    assert took < 1.5 + 0.2 + 1.0


def test_silent_answers_fail_in_bounded_time_naming_the_first_byte_timeout(local_s3, payload_url):
    options = {**local_s3.storage_options, "first_byte_timeout": 0.3, "connect_timeout": 0.3,
               "retry_budget": 1.0}
    store = RangeStore(payload_url, options)
    store.info()
    with local_s3.faults(silent=1.0):
        started = time.monotonic()
        with pytest.raises(ReadFailedError, match="FirstByteTimeoutError: no answer to GET"):
            store.read(0, 10)
    assert time.monotonic() - started < 1.0 + 0.6 + 1.0
    assert store.read(0, 10) == PAYLOAD[:10]  # answering again, as the next tests expect


def test_an_endpoint_gone_mid_session_costs_one_retry_budget_not_one_per_read(
    local_s3, payload_url
):
    options = {**local_s3.storage_options, "first_byte_timeout": 0.3, "connect_timeout": 0.3,
               "retry_budget": 1.0}
    first, second = RangeStore(payload_url, options), RangeStore(payload_url, options)
    first.info()
    second.info()
    with local_s3.faults(silent=1.0):
        with pytest.raises(ReadFailedError):
            first.read(0, 10)
        started = time.monotonic()
        with pytest.raises(EndpointUnreachableError, match="answered earlier but stopped") as error:
            second.read(100, 10)
        took = time.monotonic() - started
    # One unanswered attempt (connect + first byte: 0.6 s), not another 1 s budget of retries.
    assert took < 0.6 + 0.3
    assert local_s3.endpoint_url in str(error.value) and "Check the network" in str(error.value)
    # The first answer ends it: reads go on as before, with their retries.
    assert second.read(100, 10) == PAYLOAD[100:110]
    assert not second.health.lost()


def test_downloads_complete_and_verified_under_stalls(local_s3, payload_url, tmp_path):
    with local_s3.faults(stall=0.2, seed=3) as counts:
        result = download_file(
            payload_url,
            tmp_path / "payload.bin",
            {**local_s3.storage_options, **FAST},
            part_size=2**19,
        )
        assert counts()["stalled"] >= 1
    assert (tmp_path / "payload.bin").read_bytes() == PAYLOAD
    assert result.size == len(PAYLOAD)


def test_project_tables_read_under_stalls_equal_the_local_ones(
    local_s3, s3_dataset, synthetic_dataset, tmp_path
):
    local = EcephysProjectCache(
        manifest=synthetic_dataset.root / "manifest.json", policy="local"
    ).get_session_table()
    cache = EcephysProjectCache.from_s3(
        s3_dataset.url,
        storage_options={**s3_dataset.storage_options, **FAST},
        cache_dir=tmp_path / "cache",
    )
    with local_s3.faults(stall=0.2, seed=6) as counts:
        remote = cache.get_session_table()
        assert counts()["stalled"] >= 1
    pd.testing.assert_frame_equal(remote, local)


def test_the_benchmark_proxy_stalls_a_share_of_answers_and_the_reader_resumes_them(
    local_s3, payload_url
):
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    from benchmarks.latency_proxy import LatencyProxy

    ranges = [(offset, 50_000) for offset in range(0, 3 * 2**20 - 50_000, 150_000)]
    proxy = LatencyProxy(local_s3.endpoint_url, latency=0.0, stall_fraction=0.2, stall_seed=1)
    with proxy:
        options = {"anon": True, "endpoint_url": proxy.endpoint_url, **FAST}
        store = RangeStore(payload_url, options, gap=0)
        store.info()
        assert store.fetch(ranges) == [PAYLOAD[o : o + n] for o, n in ranges]
        stalled = [record for record in proxy.records() if record.stalled]
    assert stalled and all(0 < r.response_bytes < 50_000 for r in stalled if r.method == "GET")


# -- the limits themselves ----------------------------------------------------------------------


def test_limits_come_from_options_before_the_environment(monkeypatch):
    monkeypatch.setenv("S3ECEPHYS_STALL_LIMIT", "4")
    monkeypatch.setenv("S3ECEPHYS_RETRY_BUDGET", "12")
    limits, options = split_limits({"stall_limit": 1.5, "connect_timeout": "2", "anon": True})
    assert limits == TransferLimits(connect_timeout=2.0, stall_limit=1.5, retry_budget=12.0)
    assert options == {"anon": True}  # what s3fs gets: none of ours


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"stall_limit": "soon"}, r"storage_options\['stall_limit'\]='soon' is not a number"),
        ({"retry_budget": -1}, "must be a finite number"),
        ({"first_byte_timeout": 0}, "first_byte_timeout must be more than 0"),
    ],
)
def test_bad_limits_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        TransferLimits.resolve(options)


def test_a_bad_limit_in_the_environment_is_named(monkeypatch):
    monkeypatch.setenv("S3ECEPHYS_CONNECT_TIMEOUT", "inf")
    with pytest.raises(ValueError, match="S3ECEPHYS_CONNECT_TIMEOUT"):
        TransferLimits.resolve()


def test_the_adaptive_stall_limit_follows_the_slowest_recent_first_byte():
    health, adaptive = EndpointHealth(), TransferLimits()
    assert health.stall_limit(adaptive) == STALL_FLOOR
    health.saw_answer(0.4)
    health.saw_answer(0.05)
    assert health.stall_limit(adaptive) == pytest.approx(4.0)
    health.saw_answer(30.0)
    assert health.stall_limit(adaptive) == STALL_CAP
    for _ in range(100):  # the slow answer ages out
        health.saw_answer(0.01)
    assert health.stall_limit(adaptive) == STALL_FLOOR
    assert health.stall_limit(TransferLimits(stall_limit=0.7)) == 0.7
    assert health.stall_limit(TransferLimits(stall_limit=0)) is None
