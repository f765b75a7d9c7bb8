"""The benchmark's tools: the latency proxy (fast unit tests) and a `--quick` end-to-end run.

Timing assertions here are lower bounds only (a proxy that adds a latency can only make a request
slower), so a loaded machine cannot make them fail.
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

# benchmarks/ sits beside the package and is not installed: make it importable however pytest runs.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.latency_proxy import (  # noqa: E402
    LatencyProxy,
    RequestRecord,
    records_between,
    sequential_round_trips,
    summarize,
)

LATENCY = 0.05
BODY = bytes(range(256)) * 400  # 102,400 bytes


class _Upstream(BaseHTTPRequestHandler):
    """Answers by path: /fixed (Content-Length), /chunked, /close (no length, then closes),
    /empty (204); records request bodies it receives."""

    protocol_version = "HTTP/1.1"
    received: list[bytes] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()

    def do_PUT(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.received.append(self.rfile.read(length))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        if self.path == "/empty":
            self.send_response(204)
            self.end_headers()
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(BODY), 30_000):
                piece = BODY[start : start + 30_000]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(BODY)
            self.close_connection = True
        else:
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _get(connection: http.client.HTTPConnection, path: str, method: str = "GET") -> bytes:
    connection.request(method, path)
    return connection.getresponse().read()


def test_every_request_on_a_keep_alive_connection_pays_the_latency(upstream):
    with LatencyProxy(upstream, latency=LATENCY) as proxy:
        host, port = proxy.endpoint_url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port))
        began = time.monotonic()
        for _ in range(3):
            assert _get(connection, "/fixed") == BODY
        elapsed = time.monotonic() - began
        connection.close()
        records = proxy.records()
    assert len(records) == 3
    assert len({r.connection for r in records}) == 1, "the three requests shared one connection"
    assert all(r.end - r.start >= LATENCY * 0.99 for r in records)
    # One after another: the critical path is three round trips, and at least 3 latencies long.
    assert sequential_round_trips(records) == 3
    assert elapsed >= 3 * LATENCY * 0.99


def test_concurrent_requests_pay_the_latency_side_by_side(upstream):
    with LatencyProxy(upstream, latency=LATENCY) as proxy:
        host, port = proxy.endpoint_url.removeprefix("http://").split(":")
        barrier = threading.Barrier(4)

        def fetch() -> None:
            connection = http.client.HTTPConnection(host, int(port))
            barrier.wait()
            assert _get(connection, "/fixed") == BODY
            connection.close()

        threads = [threading.Thread(target=fetch) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        summary = proxy.summary()
    assert summary.requests == 4
    assert summary.bytes == 4 * len(BODY)
    # Overlapping lifetimes (each is held >= LATENCY, all started together) form one wave.
    assert summary.round_trips == 1


def test_bytes_are_counted_for_every_framing(upstream):
    with LatencyProxy(upstream, latency=0) as proxy:
        host, port = proxy.endpoint_url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port))
        assert _get(connection, "/fixed") == BODY
        assert _get(connection, "/chunked") == BODY
        assert _get(connection, "/fixed", method="HEAD") == b""
        assert _get(connection, "/empty") == b""
        connection.request("PUT", "/upload", body=b"x" * 5000)
        assert connection.getresponse().read() == b""
        assert _get(connection, "/close") == BODY
        connection.close()
        summary = proxy.summary()
        statuses = [r.status for r in proxy.records()]
    assert summary.requests == 6
    assert summary.by_method == {"GET": 4, "HEAD": 1, "PUT": 1}
    assert summary.bytes == 3 * len(BODY)
    assert summary.request_bytes == 5000
    assert _Upstream.received[-1] == b"x" * 5000
    assert statuses == [200, 200, 200, 204, 200, 200]


def test_a_total_bandwidth_cap_is_shared_by_all_connections(upstream):
    rate = 1_000_000  # bytes/s; 4 concurrent responses of 102,400 bytes need >= 0.41 s
    with LatencyProxy(upstream, latency=0, bandwidth=rate) as proxy:
        host, port = proxy.endpoint_url.removeprefix("http://").split(":")

        def fetch() -> None:
            connection = http.client.HTTPConnection(host, int(port))
            assert _get(connection, "/fixed") == BODY
            connection.close()

        threads = [threading.Thread(target=fetch) for _ in range(4)]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - began
    assert elapsed >= 4 * len(BODY) / rate * 0.99


def test_a_connection_bandwidth_cap_applies_to_each_connection(upstream):
    rate = 1_000_000
    with LatencyProxy(upstream, latency=0, connection_bandwidth=rate) as proxy:
        host, port = proxy.endpoint_url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port))
        began = time.monotonic()
        assert _get(connection, "/fixed") == BODY
        assert _get(connection, "/chunked") == BODY
        elapsed = time.monotonic() - began
        connection.close()
    assert elapsed >= 2 * len(BODY) / rate * 0.99


def _record(start: float, end: float) -> RequestRecord:
    return RequestRecord(0, "GET", "/", None, 206, start, end, 10, 0, 100)


def test_round_trips_are_the_longest_chain_of_non_overlapping_requests():
    assert sequential_round_trips([]) == 0
    wave = [_record(0.0, 1.0), _record(0.1, 1.1), _record(0.2, 0.9)]
    assert sequential_round_trips(wave) == 1
    # A HEAD, then a wave of three, then one more read: three round trips.
    chain = [_record(-1.0, -0.5), *wave, _record(1.2, 2.0)]
    assert sequential_round_trips(chain) == 3
    assert summarize(chain).requests == 5
    assert [r.start for r in records_between(chain, 0.0, 1.0)] == [0.0, 0.1, 0.2]


def test_s3_clients_work_through_the_proxy(local_s3, tmp_path):
    s3fs = pytest.importorskip("s3fs")
    boto3 = pytest.importorskip("boto3")
    data = bytes(range(256)) * 8192  # 2 MiB: botocore sends "Expect: 100-continue"
    with LatencyProxy(local_s3.endpoint_url, latency=0.01) as proxy:
        client = boto3.client(
            "s3",
            endpoint_url=proxy.endpoint_url,
            region_name="us-west-2",
            aws_access_key_id="local-s3",
            aws_secret_access_key="local-s3",
        )
        client.put_object(Bucket=local_s3.bucket, Key="proxy-test/blob", Body=data)
        proxy.reset()
        fs = s3fs.S3FileSystem(anon=True, endpoint_url=proxy.endpoint_url, skip_instance_cache=True)
        path = f"{local_s3.bucket}/proxy-test/blob"
        starts = [i * 100_000 for i in range(8)]
        pieces = fs.cat_ranges([path] * 8, starts, [s + 1000 for s in starts])
        assert pieces == [data[s : s + 1000] for s in starts]
        summary = proxy.summary()
    assert summary.requests == 8
    assert summary.bytes == 8000
    assert summary.round_trips == 1
    assert not proxy.errors


@pytest.fixture(scope="module")
def small_hdf5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A chunked gzip 2-D dataset (edge chunks included), a contiguous 1-D one, and the ends of
    its runs (a ragged column's index)."""
    import h5py
    import numpy as np

    path = tmp_path_factory.mktemp("hdf5") / "small.h5"
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as handle:
        handle.create_dataset(
            "grid",
            data=rng.normal(size=(1050, 7)).astype("f4"),
            chunks=(100, 1),
            compression="gzip",
            shuffle=True,
        )
        handle["flat"] = np.arange(5000, dtype="f8")
        handle["flat_ends"] = np.array([10, 400, 2500, 5000], dtype="i8")
        handle["grid"].attrs["unit"] = "volts"
    return path


def test_the_decode_floor_inflates_every_stored_chunk_once(small_hdf5):
    from benchmarks.decode_floor import inflate_cost

    cost = inflate_cost(small_hdf5, "grid")
    # 11 chunk rows (the last one partial, stored whole) x 7 columns of 100 float32.
    assert cost.chunks == 77
    assert cost.inflated_bytes == 77 * 100 * 4
    assert 0 < cost.stored_bytes < cost.inflated_bytes * 1.1 and cost.cpu_seconds >= 0


def test_the_decode_floor_compares_the_installed_inflaters(small_hdf5):
    from benchmarks.decode_floor import candidates, stored_chunks, time_inflater

    stored, raw_size = stored_chunks(small_hdf5, "grid")
    assert (len(stored), raw_size) == (77, 400)
    inflaters = candidates()
    assert {"zlib", "libdeflate", "s3ecephys"} <= set(inflaters)
    for name, inflater in inflaters.items():
        timing = time_inflater(name, inflater, stored, raw_size, repeats=1)  # checks the bytes
        assert timing.cpu_seconds >= 0 and timing.wall_two_threads > 0
    with pytest.raises(AssertionError, match="differently"):
        time_inflater("broken", lambda body, size: b"x", stored, raw_size, repeats=1)


def test_the_shared_core_limit_adds_serving_receiving_inflating_and_reducing(
    small_hdf5, tmp_path
):
    from benchmarks.decode_floor import reduction_cpu, reduction_cpu_fresh, shared_core_limit

    assert reduction_cpu(small_hdf5, "grid", repeats=1) > 0
    assert reduction_cpu_fresh(small_hdf5, "grid", repeats=1) > 0  # in a process of its own
    raw = {"method": "raw-get", "workload": "W7", "status": "ok", "wall": {"total": 1.0}}
    raw.update(serving_cpu=0.5, read_cpu=0.7)
    ours = {"method": "s3ecephys-warm", "workload": "W7", "status": "ok", "wall": {"total": 2.4}}
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"runs": [raw, ours]}))
    lines = shared_core_limit(results, inflate=0.8, reduce=0.4, cores=2, reduced="first pass")
    # (0.5 + 0.7 + 0.8 + 0.4) / 2 = 1.2 s, 1.2x the larger of raw GET (1 s) and 0.8 / 2.
    assert "0.40 (reduction, first pass) CPU s" in lines[1]
    assert ">= 1.200 s wall, 1.20x the larger of raw GET and inflate / cores (1.000 s)" in lines[1]
    assert lines[2] == "  s3ecephys-warm: 2.400 s = 2.00x that limit"


def test_bytes_needed_are_the_chunks_a_box_touches(small_hdf5):
    from benchmarks.chunk_index import DatasetLayout, build_layouts

    layouts = build_layouts(small_hdf5, ["grid", "flat"])
    grid = DatasetLayout.from_dict(json.loads(json.dumps(layouts["grid"].to_dict())))
    assert grid.chunks == (100, 1) and grid.filters == [("shuffle", 4), ("gzip", 4)]
    # Rows 150-249 of columns 2-3 lie in chunk rows 1 and 2 of two columns: four chunks.
    ranges = grid.ranges_for(((150, 250), (2, 4)))
    assert len(ranges) == 4
    assert grid.bytes_for([((150, 250), (2, 4))]) == sum(size for _, size in ranges)
    assert grid.ranges_for(((0, 0), (0, 7))) == []
    flat = layouts["flat"]
    assert flat.layout == "contiguous"
    assert flat.ranges_for(((10, 20),)) == [(flat.offset + 80, 80)]


def test_the_ideal_reader_reads_what_h5py_reads_in_one_fetch(small_hdf5):
    import h5py
    import numpy as np

    from benchmarks.chunk_index import build_layouts
    from benchmarks.ideal import IdealReader
    from s3ecephys.storage.ranges import ObjectInfo

    layouts = build_layouts(small_hdf5, ["grid", "flat"])
    status = small_hdf5.stat()
    info = ObjectInfo(size=status.st_size, mtime_ns=status.st_mtime_ns)
    reader = IdealReader(str(small_hdf5), {}, info, layouts)
    with h5py.File(small_hdf5, "r") as handle:
        expected_box = handle["grid"][150:1050, 2:5]
        expected_rms = np.sqrt((handle["grid"][()].astype("f8") ** 2).mean(axis=0))
        expected_runs = [handle["flat"][10:20], handle["flat"][4000:4100]]
    assert np.array_equal(reader.read_box("grid", ((150, 1050), (2, 5))), expected_box)
    assert reader.store.stats.round_trips == 1
    assert np.allclose(reader.channel_rms("grid"), expected_rms)
    runs = reader.read_boxes("flat", [((10, 20),), ((4000, 4100),)])
    assert all(np.array_equal(a, b) for a, b in zip(runs, expected_runs, strict=True))
    assert reader.store.stats.round_trips == 3
    reader.close()


def test_the_raw_transfer_sends_the_ideal_readers_requests_and_decodes_nothing(small_hdf5):
    from benchmarks.chunk_index import build_layouts
    from benchmarks.ideal import IdealReader
    from s3ecephys.storage.ranges import ObjectInfo, coalesce_ranges

    layouts = build_layouts(small_hdf5, ["grid"])
    grid = layouts["grid"]
    chunks = list(zip(grid.chunk_offsets.tolist(), grid.chunk_sizes.tolist(), strict=True))
    status = small_hdf5.stat()
    info = ObjectInfo(size=status.st_size, mtime_ns=status.st_mtime_ns)
    readers = [IdealReader(str(small_hdf5), {}, info, layouts) for _ in range(2)]
    # Small requests and no gap merging, so that the chunks' requests split and differ from them.
    for reader in readers:
        reader.store.gap, reader.store.max_request = 0, 1000
    requests = coalesce_ranges(chunks, gap=0, max_request=1000)
    assert len(requests) > 1 and requests != chunks
    # Merging the requests again gives the same requests: asking for them is asking for the chunks.
    assert coalesce_ranges(requests, gap=0, max_request=1000) == requests
    decoded, raw = readers
    decoded.channel_rms("grid")
    assert raw.transfer("grid") == {
        "chunks": len(chunks),
        "bytes_received": sum(length for _, length in requests),
    }
    assert raw.store.stats == decoded.store.stats
    assert raw.store.stats.requests == len(requests) and raw.store.stats.round_trips == 1
    for reader in readers:
        reader.close()


@pytest.fixture(scope="module")
def small_on_s3(local_s3, small_hdf5, tmp_path_factory: pytest.TempPathFactory):
    """The small file on the local S3 (no checksums, as the runner uploads), and a Context whose
    prebuilt indexes are built on demand under a private folder."""
    from benchmarks.method_base import Context
    from benchmarks.run import _upload_client

    key = "benchmark-tools/small.h5"
    client = _upload_client(local_s3)
    client.upload_file(str(small_hdf5), local_s3.bucket, key)
    head = client.head_object(Bucket=local_s3.bucket, Key=key)
    folder = tmp_path_factory.mktemp("benchmark-context")
    return Context(
        endpoint_url=local_s3.endpoint_url,
        bucket=local_s3.bucket,
        keys={"small": key},
        sizes={"small": head["ContentLength"]},
        etags={"small": head["ETag"]},
        scratch_dir=str(folder / "scratch"),
        index_dir=str(folder / "indexes"),
        layouts_file="",
        local_files={"small": str(small_hdf5)},
    )


# dask names a pyfive dataset by pickling it; the copy's file wrapper fails when it is collected.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("name", ["s3ecephys-cold", "h5coro", "pyfive"])
def test_the_native_readers_read_what_h5py_reads(name, small_on_s3, small_hdf5, monkeypatch):
    import h5py
    import numpy as np

    from benchmarks.methods import METHODS

    method = METHODS[name](small_on_s3)
    for variable, value in method.environment().items():
        monkeypatch.setenv(variable, value)
    method.import_modules()
    with h5py.File(small_hdf5, "r") as reference:
        grid, flat = reference["grid"], reference["flat"]
        expected_runs = [flat[0:10], flat[400:2500], flat[2500:5000]]
        expected_rms = np.sqrt((grid[()].astype("f8") ** 2).mean(axis=0))
        expected_box = grid[150:1050, 2:5]
        expected_meta = (grid.shape, str(grid.dtype), grid.chunks)
        expected_flat = flat[()]
    # One handle per read, as in the benchmark (one workload per process): h5coro 1.0.7 appends
    # a dataset's chunk dimensions again each time it inspects it, and reading a dataset
    # inspected twice fails.
    reads = {
        "meta": lambda h: method.metadata(h, "grid"),
        "box": lambda h: method.read_box(h, "grid", ((150, 1050), (2, 5))),
        "flat": lambda h: method.read_box(h, "flat", ((0, 5000),)),
        "runs": lambda h: method.read_ragged(h, "flat", "flat_ends", (0, 2, 3)),
        "rms": lambda h: method.channel_rms(h, "grid"),
    }
    values = {}
    for what, read in reads.items():
        handle = method.open("small")
        try:
            values[what] = read(handle)
        finally:
            method.close(handle)
    meta = values["meta"]
    assert (tuple(meta["shape"]), meta["dtype"], tuple(meta["chunks"])) == expected_meta
    assert meta["attributes"] == ["unit"]
    assert np.array_equal(values["box"], expected_box)
    assert np.array_equal(values["flat"], expected_flat)
    assert [r.tolist() for r in values["runs"]] == [r.tolist() for r in expected_runs]
    assert np.allclose(values["rms"], expected_rms)


def test_h5coro_still_misreads_a_contiguous_hyperslice_that_does_not_start_at_zero(small_hdf5):
    """Why the h5coro method reads a contiguous ragged column whole (benchmarks.native_readers):
    when this fails, h5coro reads such slices right and the runs can be read as hyperslices."""
    import numpy as np
    from h5coro import filedriver, h5coro

    reader = h5coro.H5Coro(str(small_hdf5), filedriver.FileDriver)
    values = reader.readDatasets([{"dataset": "flat", "hyperslice": [[400, 410]]}])["flat"]
    reader.close()
    assert values.shape == (10,)
    assert not np.array_equal(values, np.arange(400, 410, dtype="f8"))


def test_s3ecephys_runs_import_nothing_but_s3ecephys_before_the_clock():
    """Whatever s3ecephys imports lazily (s3fs, botocore, h5py, dask) is its measured cost."""
    script = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import s3ecephys\n"
        "user = set(sys.modules)\n"
        "from benchmarks.methods import METHODS\n"
        "after_harness = set(sys.modules)\n"
        "for name in ('s3ecephys-cold', 's3ecephys-warm', 's3ecephys-warm-tables'):\n"
        "    METHODS[name](None).import_modules()\n"
        "print(sorted(set(sys.modules) - after_harness))\n"
        "print(sorted(m for m in after_harness - user if m.split('.')[0] != 'benchmarks'))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    added_by_methods, added_by_harness = completed.stdout.splitlines()
    assert added_by_methods == "[]"
    assert added_by_harness == "[]"


def test_a_worker_reports_its_own_peak_memory_not_its_parents():
    import resource

    ballast = bytearray(64 * 2**20)
    ballast[::4096] = b"x" * len(ballast[::4096])
    parent_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    completed = subprocess.run(
        [sys.executable, "-c", "from benchmarks.worker import _peak_rss; print(_peak_rss())"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    del ballast
    # getrusage's maximum survives exec: a child would report at least the parent's peak.
    assert int(completed.stdout) < parent_peak - 32 * 2**20


def test_warm_runs_read_through_a_fresh_copy_of_their_prebuilt_index(tmp_path):
    from benchmarks.methods import METHODS
    from benchmarks.run import _prepare_scratch

    built = tmp_path / "indexes" / "s3ecephys-open"
    built.mkdir(parents=True)
    (built / "index.bin").write_bytes(b"index")
    context = {"index_dir": str(tmp_path / "indexes")}
    scratch = tmp_path / "scratch"
    _prepare_scratch(scratch, context, "s3ecephys-warm")
    (scratch / "index-cache" / "table.bin").write_bytes(b"a chunk table the run read")
    _prepare_scratch(scratch, context, "s3ecephys-warm")
    assert sorted(p.name for p in (scratch / "index-cache").iterdir()) == ["index.bin"]
    _prepare_scratch(scratch, context, "s3ecephys-cold")
    assert list(scratch.iterdir()) == []
    assert {METHODS[n].prebuilt_index for n in METHODS} == {
        None,
        "s3ecephys-open",
        "s3ecephys-tables",
        "kerchunk",
    }


def test_the_first_read_of_a_process_is_reported_beside_the_second():
    from benchmarks.report import _first_read

    run = _ok_run("s3ecephys-warm", 0.5, {})
    run.update(workload="W2")
    run["wall"]["again"] = 0.1
    run["wall"]["after"] = 0.25
    run["proxy"]["after"] = {"requests": 7, "bytes": 9000, "round_trips": 3}
    failed = {"method": "h5coro", "workload": "W2", "status": "error", "error": "x"}
    results = {
        "workloads": [{"name": "W2", "title": "LFP 1 s × all channels", "repeat": True}],
        "runs": [run, failed],
    }
    lines = _first_read(results)
    assert lines[0] == "## First read in a fresh process (W2: LFP 1 s × all channels)"
    assert (
        "| s3ecephys-warm | 0.500 | 1 | 36 | 300 | 0.100 | 0.400 | 7 req, 3 RT, 0.250 s |"
        in lines
    )
    assert not any("h5coro" in line for line in lines)
    assert _first_read({"workloads": [{"name": "W3"}], "runs": [run]}) == []


def test_raw_get_runs_only_w7_and_is_in_every_default_method_list():
    from benchmarks.run import NOT_APPLICABLE, parse_arguments

    for argv in ([], ["--quick"], ["--methods", "all"], ["--methods", "ideal,raw-get"]):
        assert "raw-get" in parse_arguments(argv).methods, argv
    assert set(NOT_APPLICABLE) == {("raw-get", kind) for kind in ("metadata", "box", "ragged")}


def test_each_link_and_thread_setting_gets_its_own_results_file():
    from benchmarks.run import parse_arguments

    settings = (
        [],
        ["--latency-ms", "80"],
        ["--bandwidth-mbps", "400"],
        ["--dask-threads", "4", "--workloads", "W7"],
    )
    assert [parse_arguments(argv).out.name for argv in settings] == [
        "full-20ms.json",
        "full-80ms.json",
        "full-20ms-400mbps.json",
        "full-20ms-4threads.json",
    ]


def _ok_run(method: str, wall: float, fingerprint: dict, decodes: bool = True) -> dict:
    return {
        "method": method,
        "workload": "W7",
        "status": "ok",
        "decodes": decodes,
        "needed_bytes": 300_000_000,
        "fingerprint": fingerprint,
        "proxy": {"all": {"requests": 36, "bytes": 300_000_000, "round_trips": 1}},
        "wall": {"open": 0.01, "read": wall - 0.01, "total": wall},
        "peak_rss": 2**30,
    }


def test_runs_that_decode_nothing_are_neither_the_reference_nor_checked():
    from benchmarks.report import _row_cells
    from benchmarks.run import _check_results

    raw = _ok_run("raw-get", 2.0, {"bytes_received": "300000000", "chunks": "6144"}, False)
    rms = {"shape": [95], "sum": 1.0, "sumsq": 1.0}
    runs = [raw, _ok_run("ideal", 2.5, rms), _ok_run("s3ecephys-warm", 3.0, dict(rms, sum=2.0))]
    _check_results(runs)
    assert "matches_reference" not in raw
    assert [r["matches_reference"] for r in runs[1:]] == [True, False]
    assert {r["reference_method"] for r in runs[1:]} == {"ideal"}
    assert [_row_cells(r, {})[-2] for r in runs] == ["not decoded", "same", "**DIFFERENT**"]


def test_w7_throughput_is_stated_as_a_share_of_raw_gets_with_where_the_cpu_went():
    from benchmarks.report import _throughput

    workload = {"name": "W7", "needed_bytes": 300_000_000, "kind": "rms"}
    ours = _ok_run("s3ecephys-warm", 4.0, {})
    ours.update(read_cpu=5.0, serving_cpu=1.0)  # 6 CPU s on 2 cores: 3 s if never idle
    runs = [
        ours,
        _ok_run("raw-get", 2.0, {}, decodes=False),
        {"method": "kerchunk", "workload": "W7", "status": "n/a", "reason": "no references"},
    ]
    lines = _throughput({"runs": runs, "environment": {"cpus": 2}}, workload)
    assert lines[0].startswith("Throughput: 300 MB needed ÷ wall s. *reader CPU*")
    assert "| s3ecephys-warm | 4.000 | 75.0 | 50 % | 5.00 | 1.00 | 3.00 | 1.33× |" in lines
    assert "| raw-get | 2.000 | 150.0 | 100 % | – | – | – | – |" in lines
    assert not any("kerchunk" in line for line in lines)
    alone = _throughput({"runs": runs[:1]}, workload)
    assert "no `raw-get` run" in alone[0]
    assert any(line.startswith("| s3ecephys-warm | 4.000 | 75.0 | – |") for line in alone)


@pytest.mark.benchmark
def test_the_quick_benchmark_runs_end_to_end(tmp_path):
    synthetic = pytest.importorskip("s3ecephys.synthetic")
    if not hasattr(synthetic, "write_dataset"):
        pytest.skip("the synthetic dataset writer is not there yet")
    out = tmp_path / "quick.json"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--quick",
            "--dask-threads",
            "3",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    results = json.loads(out.read_text())
    assert results["runs"], "no measurements"
    failed = [r for r in results["runs"] if r.get("error")]
    assert not failed, failed
    raw = [r for r in results["runs"] if r["method"] == "raw-get"]
    assert {r["workload"]: r["status"] for r in raw} == {
        **{w: "n/a" for w in ("W1", "W2", "W3", "W4", "W5", "W6")},
        "W7": "ok",
    }
    w7 = next(r for r in raw if r["workload"] == "W7")
    assert w7["proxy"]["all"]["bytes"] >= w7["needed_bytes"] and "matches_reference" not in w7
    w7 = [r for r in results["runs"] if r["workload"] == "W7" and r["status"] == "ok"]
    assert {r["dask_threads"] for r in w7} == {3}
    markdown = out.with_suffix(".md").read_text()
    assert "3 dask threads" in markdown.splitlines()[0]
    # Reader and serving CPU measured for every W7 run (here on /proc), raw GETs included.
    cpu = r"\| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+× \|$"
    assert re.search(r"^\| raw-get \| [\d.]+ \| [\d.]+ \| 100 % " + cpu, markdown, re.MULTILINE)
    assert "python -m benchmarks.run" in completed.stdout


def test_the_record_says_how_numpy_may_use_huge_pages(monkeypatch):
    from benchmarks.report import environment

    monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "0")
    recorded = environment()["huge_pages"]
    assert recorded.endswith("NUMPY_MADVISE_HUGEPAGE=0")
    if Path("/sys/kernel/mm/transparent_hugepage/enabled").exists():
        assert re.match(r"enabled=\w+, defrag=[\w+]+; ", recorded)
