"""Byte ranges from S3 and local files: exact bytes, few requests, one round trip, safe retries."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st

from s3ecephys.storage import s3_requests
from s3ecephys.storage.blockfile import BlockFile
from s3ecephys.storage.ranges import (
    ObjectChangedError,
    ObjectInfo,
    RangeStore,
    ShortReadError,
    coalesce_ranges,
)

PAYLOAD = np.random.default_rng(7).integers(0, 256, 3 * 2**20, dtype=np.uint8).tobytes()


@pytest.fixture(scope="module")
def payload_url(local_s3):
    key = "tests/ranges/payload.bin"
    local_s3.put_object(key, PAYLOAD)
    return local_s3.url(key)


@pytest.fixture
def payload_file(tmp_path):
    path = tmp_path / "payload.bin"
    path.write_bytes(PAYLOAD)
    return path


def test_neighbours_merge_and_far_ranges_stay_apart():
    assert coalesce_ranges([(0, 10), (15, 10), (1000, 5)], gap=100) == [(0, 25), (1000, 5)]
    assert coalesce_ranges([(0, 10), (15, 10)], gap=4) == [(0, 10), (15, 10)]


def test_overlapping_and_repeated_ranges_are_requested_once():
    assert coalesce_ranges([(50, 10), (0, 100), (50, 10)], gap=0) == [(0, 100)]


def test_long_ranges_split_into_even_parts():
    assert coalesce_ranges([(0, 25)], gap=0, max_request=10) == [(0, 9), (9, 9), (18, 7)]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, len(PAYLOAD) - 1), st.integers(0, 70_000)),
        min_size=1,
        max_size=30,
    ),
    st.integers(0, 200_000),
    st.integers(1, 300_000),
)
def test_any_ranges_come_back_exact_and_in_order(tmp_path_factory, ranges, gap, max_request):
    path = tmp_path_factory.getbasetemp() / "hypothesis-payload.bin"
    if not path.exists():
        path.write_bytes(PAYLOAD)
    ranges = [(offset, min(length, len(PAYLOAD) - offset)) for offset, length in ranges]
    store = RangeStore(path, gap=gap, max_request=max_request)
    assert store.fetch(ranges) == [PAYLOAD[o : o + n] for o, n in ranges]


def test_many_ranges_from_s3_cost_one_round_trip(payload_url, local_s3):
    store = RangeStore(payload_url, local_s3.storage_options, gap=1024, max_request=2**20)
    ranges = [(offset, 4096) for offset in range(0, 3 * 2**20, 300_000)]

    assert store.fetch(ranges) == [PAYLOAD[o : o + n] for o, n in ranges]
    # The HEAD that pinned the version, then all ranges (11 far apart) in one concurrent wave.
    assert store.stats.requests == 1 + len(ranges)
    assert store.stats.round_trips == 2
    assert store.stats.bytes == 4096 * len(ranges)


def test_a_long_range_travels_in_concurrent_parts(payload_url, local_s3):
    store = RangeStore(payload_url, local_s3.storage_options, max_request=2**20)
    store.info()
    store.stats.reset()

    assert store.read(0, len(PAYLOAD)) == PAYLOAD
    assert (store.stats.requests, store.stats.round_trips) == (3, 1)


def test_info_is_one_head_and_remembered(payload_url, local_s3):
    store = RangeStore(payload_url, local_s3.storage_options)
    first = store.info()
    assert first.size == len(PAYLOAD) and first.etag
    assert store.info() == first
    assert store.stats.requests == 1


def test_the_ends_of_an_object_come_in_one_wave_that_also_tells_its_version(payload_url, local_s3):
    store = RangeStore(payload_url, local_s3.storage_options)
    assert store.fetch_ends(2**20, 2**19) == (PAYLOAD[: 2**20], PAYLOAD[-(2**19) :])
    assert (store.stats.requests, store.stats.round_trips) == (2, 1)
    head = local_s3.client.head_object(Bucket=local_s3.bucket, Key="tests/ranges/payload.bin")
    assert store.info() == ObjectInfo(size=len(PAYLOAD), etag=head["ETag"])
    assert store.stats.requests == 2  # no HEAD was needed


def test_the_ends_of_a_small_or_empty_object_are_all_of_it(local_s3):
    local_s3.put_object("tests/ranges/small.bin", b"0123456789")
    small = RangeStore(local_s3.url("tests/ranges/small.bin"), local_s3.storage_options)
    assert small.fetch_ends(4096, 4096) == (b"0123456789", b"0123456789")
    assert small.info().size == 10
    local_s3.put_object("tests/ranges/empty.bin", b"")
    empty = RangeStore(local_s3.url("tests/ranges/empty.bin"), local_s3.storage_options)
    assert empty.fetch_ends(4096, 4096) == (b"", b"")
    assert empty.info().size == 0
    # Both ranges refused (416), then a HEAD.
    assert (empty.stats.requests, empty.stats.round_trips) == (3, 2)


def test_a_cut_answer_in_the_first_wave_is_asked_again(payload_url, local_s3, monkeypatch):
    real = s3_requests._get_with_version
    cuts = iter([True])

    async def cut_once(self, client, span, arrived=None):
        data, info = await real(self, client, span, arrived)
        if span.startswith("-") and next(cuts, False):
            raise ShortReadError(f"pretend {span} arrived cut")
        return data, info

    monkeypatch.setattr(s3_requests, "_get_with_version", cut_once)
    monkeypatch.setattr("s3ecephys.storage.attempts._BACKOFF_BASE", 0.0)
    store = RangeStore(payload_url, local_s3.storage_options)
    assert store.fetch_ends(1000, 2000) == (PAYLOAD[:1000], PAYLOAD[-2000:])
    assert (store.stats.requests, store.stats.round_trips) == (3, 2)


def test_an_object_replaced_once_between_its_ends_is_asked_again(
    payload_url, local_s3, monkeypatch
):
    real = s3_requests._get_with_version
    stale = iter([True])

    async def head_once_of_another_version(self, client, span, arrived=None):
        data, info = await real(self, client, span, arrived)
        if span.startswith("0-") and next(stale, False):
            return b"x" * len(data), ObjectInfo(size=info.size, etag='"an-earlier-version"')
        return data, info

    monkeypatch.setattr(s3_requests, "_get_with_version", head_once_of_another_version)
    store = RangeStore(payload_url, local_s3.storage_options)
    assert store.fetch_ends(1024, 1024) == (PAYLOAD[:1024], PAYLOAD[-1024:])
    assert (store.stats.requests, store.stats.round_trips) == (4, 2)


def test_an_object_replaced_between_its_ends_is_not_mixed(payload_url, local_s3, monkeypatch):
    real = s3_requests._get_with_version

    async def head_of_another_version(self, client, span, arrived=None):
        data, info = await real(self, client, span, arrived)
        if span.startswith("0-"):
            return data, ObjectInfo(size=info.size, etag='"an-earlier-version"')
        return data, info

    monkeypatch.setattr(s3_requests, "_get_with_version", head_of_another_version)
    store = RangeStore(payload_url, local_s3.storage_options)
    # Asked once more, the two answers still disagree: no version is taken for the other's.
    with pytest.raises(ObjectChangedError, match="changed while it was being opened"):
        store.fetch_ends(1024, 1024)
    assert (store.stats.requests, store.stats.round_trips) == (4, 2)


def test_a_replaced_object_is_reported_not_mixed(local_s3):
    key = "tests/ranges/replaced.bin"
    local_s3.put_object(key, b"a" * 1000)
    store = RangeStore(local_s3.url(key), local_s3.storage_options)
    assert store.read(0, 10) == b"a" * 10

    local_s3.put_object(key, b"b" * 1000)
    with pytest.raises(ObjectChangedError, match="changed since it was indexed"):
        store.read(10, 10)
    with pytest.raises(ObjectChangedError):
        RangeStore(local_s3.url(key), local_s3.storage_options, expected=store.expected).info()


def test_a_changed_local_file_is_reported(payload_file):
    store = RangeStore(payload_file)
    store.read(0, 10)
    payload_file.write_bytes(b"x" * 100)
    with pytest.raises(ObjectChangedError):
        store.read(0, 10)


def _slow_down() -> ClientError:
    return ClientError(
        {"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "GetObject"
    )


def test_transient_failures_are_retried(payload_url, local_s3, monkeypatch):
    store = RangeStore(payload_url, local_s3.storage_options, gap=0)
    store.info()
    store.stats.reset()
    real_get_range = s3_requests._get_range
    failures = iter([_slow_down(), ShortReadError("cut"), ConnectionResetError("reset")])

    async def flaky(self, *arguments):
        error = next(failures, None)
        if error is not None:
            raise error
        return await real_get_range(self, *arguments)

    monkeypatch.setattr(s3_requests, "_get_range", flaky)
    monkeypatch.setattr("s3ecephys.storage.attempts._BACKOFF_BASE", 0.0)

    assert store.fetch([(0, 100), (2**20, 100)]) == [PAYLOAD[:100], PAYLOAD[2**20 : 2**20 + 100]]
    assert store.stats.requests == 5
    assert store.stats.round_trips > 1


def test_short_responses_are_never_returned(payload_url, local_s3, monkeypatch):
    store = RangeStore(payload_url, local_s3.storage_options, retries=2)
    store.info()
    store.stats.reset()

    class TruncatedBody:
        async def __aenter__(self):
            return self

        async def __aexit__(self, *exc_info):
            return False

        sent = False

        async def read(self, amount=None):
            data, self.sent = (b"" if self.sent else b"only a few bytes"), True
            return data

    async def truncating_get_object(**arguments):
        return {"Body": TruncatedBody()}

    async def client(self):
        class Client:
            get_object = staticmethod(truncating_get_object)

        return Client()

    monkeypatch.setattr(RangeStore, "client", client)
    monkeypatch.setattr("s3ecephys.storage.attempts._BACKOFF_BASE", 0.0)
    with pytest.raises(OSError, match="S3 sent 16"):
        store.read(0, 1000)
    assert store.stats.requests == 3


class _Answers:
    """A client that passes GETs to the real one, after ``change`` has had a look at each."""

    def __init__(self, client, change):
        self.client, self.change, self.ranges = client, change, []

    def __getattr__(self, name):
        return getattr(self.client, name)

    async def get_object(self, **arguments):
        self.ranges.append(arguments["Range"])
        answer = await self.client.get_object(**arguments)
        return self.change(len(self.ranges), answer)


def _answered_by(monkeypatch, change) -> _Answers:
    real_client = RangeStore.client
    answers: list[_Answers] = []

    async def client(self):
        if not answers:
            answers.append(_Answers(await real_client(self), change))
        return answers[0]

    monkeypatch.setattr(RangeStore, "client", client)
    monkeypatch.setattr("s3ecephys.storage.attempts._BACKOFF_BASE", 0.0)
    return answers


class _CutBody:
    """A response body that breaks off after ``keep`` bytes, like a reset connection."""

    def __init__(self, body, keep):
        self.body, self.keep = body, keep

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        await self.body.__aexit__(*exc_info)
        return False

    async def read(self, amount):
        if self.keep <= 0:
            raise ConnectionResetError("connection reset by peer")
        data = await self.body.read(min(amount, self.keep))
        self.keep -= len(data)
        return data


def test_a_cut_answer_goes_on_where_it_stopped_and_hands_each_range_out_once(
    payload_url, local_s3, monkeypatch
):
    def cut_the_first(number, answer):
        if number == 1:
            answer["Body"] = _CutBody(answer["Body"], keep=1_000_000)
        return answer

    answers = _answered_by(monkeypatch, cut_the_first)
    store = RangeStore(payload_url, local_s3.storage_options, gap=2**20, max_request=2**22)
    store.info()
    ranges = [(offset, 50_000) for offset in range(0, 2_000_000, 100_000)]

    handed = [item for batch in store.fetch_each(ranges) for item in batch]
    assert sorted(position for position, _ in handed) == list(range(len(ranges)))
    values = [bytes(body) for _, body in sorted(handed)]
    assert values == [PAYLOAD[o : o + n] for o, n in ranges]
    # One request for all, cut after 1,000,000 bytes; the second asks only for the rest.
    assert answers[0].ranges == ["bytes=0-1949999", "bytes=1000000-1949999"]


def test_a_cut_end_in_the_first_wave_goes_on_where_it_stopped(payload_url, local_s3, monkeypatch):
    def cut_the_tail(number, answer):
        if answers[0].ranges[number - 1] == "bytes=-500000":
            answer["Body"] = _CutBody(answer["Body"], keep=200_000)
        return answer

    answers = _answered_by(monkeypatch, cut_the_tail)
    store = RangeStore(payload_url, local_s3.storage_options)
    assert store.fetch_ends(1000, 500_000) == (PAYLOAD[:1000], PAYLOAD[-500_000:])
    size = len(PAYLOAD)
    # The tail's second answer brings only what the first did not.
    assert sorted(answers[0].ranges) == sorted(
        ["bytes=0-999", "bytes=-500000", f"bytes={size - 300_000}-{size - 1}"]
    )
    assert store.info().size == size


def test_an_answer_for_other_bytes_is_never_taken_for_ours(payload_url, local_s3, monkeypatch):
    def the_whole_object(number, answer):
        answer["ContentRange"] = f"bytes 0-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"
        return answer

    _answered_by(monkeypatch, the_whole_object)
    store = RangeStore(payload_url, local_s3.storage_options, retries=1)
    store.info()
    with pytest.raises(OSError, match="S3 answered bytes 0-"):
        store.read(1000, 10)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, len(PAYLOAD) - 1), st.integers(0, 300_000)),
        min_size=1,
        max_size=20,
    ),
    st.integers(0, 200_000),
    st.integers(50_000, 400_000),
)
def test_ranges_from_s3_arrive_whole_each_once_whatever_the_requests(
    payload_url, local_s3, ranges, gap, max_request
):
    ranges = [(offset, min(length, len(PAYLOAD) - offset)) for offset, length in ranges]
    store = RangeStore(payload_url, local_s3.storage_options, gap=gap, max_request=max_request)
    handed = {}
    for batch in store.fetch_each(ranges):
        for position, body in batch:
            assert position not in handed
            handed[position] = bytes(body)
    assert [handed[i] for i in range(len(ranges))] == [PAYLOAD[o : o + n] for o, n in ranges]


def test_a_read_stopped_early_cancels_the_rest(payload_url, local_s3):
    store = RangeStore(payload_url, local_s3.storage_options, gap=0, max_request=2**18)
    store.info()
    arrivals = store.fetch_each([(0, len(PAYLOAD))] + [(o, 10) for o in range(0, 2**20, 2**16)])
    next(arrivals)
    arrivals.close()
    assert store.read(5, 5) == PAYLOAD[5:10]


def test_missing_object_and_ranges_past_the_end(local_s3, payload_url):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        RangeStore(local_s3.url("tests/ranges/missing.bin"), local_s3.storage_options).info()
    store = RangeStore(payload_url, local_s3.storage_options)
    store.info()
    with pytest.raises(ValueError, match="past the end"):
        store.read(len(PAYLOAD) - 10, 20)


def test_a_store_pickles_without_its_client(payload_url, local_s3):
    store = RangeStore(payload_url, local_s3.storage_options)
    store.read(0, 10)
    copy = pickle.loads(pickle.dumps(store))

    assert copy.expected == store.expected
    assert copy.read(100, 50) == PAYLOAD[100:150]
    assert len(pickle.dumps(store)) < 1000


def test_urls_that_name_no_object_are_refused():
    with pytest.raises(ValueError, match="s3://bucket/key"):
        RangeStore("s3://bucket-only")
    with pytest.raises(ValueError, match="unsupported URL"):
        RangeStore("https://example.org/file.nwb")


def test_h5py_reads_metadata_through_a_block_file(tmp_path, local_s3):
    path = tmp_path / "small.h5"
    with h5py.File(path, "w") as file:
        file.create_dataset("group/values", data=np.arange(1000.0), chunks=(100,))
        file["group"].attrs["note"] = "hello"
    key = "tests/ranges/small.h5"
    local_s3.put_object(key, path.read_bytes())
    store = RangeStore(local_s3.url(key), local_s3.storage_options)

    with h5py.File(BlockFile(store), "r") as file:
        assert file["group"].attrs["note"] == "hello"
        np.testing.assert_array_equal(file["group/values"][:], np.arange(1000.0))
    # The whole small file arrived with the first wave (its head and its tail), without a HEAD.
    assert (store.stats.requests, store.stats.round_trips) == (2, 1)


def test_block_file_reads_and_seeks_like_a_file(payload_file):
    handle = BlockFile(RangeStore(payload_file), block_size=1000, head_size=0, tail_size=0)
    handle.seek(2500)
    assert handle.read(3000) == PAYLOAD[2500:5500]
    assert handle.tell() == 5500
    handle.seek(-10, 2)
    assert handle.read() == PAYLOAD[-10:]
    assert handle.read(5) == b""
