"""The gzip inflater: libdeflate gives zlib's bytes, zlib takes over without it, damage is named."""

from __future__ import annotations

import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np
import pytest

from s3ecephys.hdf5 import File
from s3ecephys.hdf5 import inflate as inflate_module
from s3ecephys.hdf5.indexer import build_index
from s3ecephys.hdf5.inflate import InflateError, inflate, inflater_name
from s3ecephys.storage.ranges import RangeStore

_RNG = np.random.default_rng(16)
_PAYLOADS = {
    "empty": b"",
    "one byte": b"\x07",
    "zeros": bytes(200_000),
    "random": _RNG.bytes(70_001),  # incompressible: stored blocks
    "float32 signal": np.cumsum(_RNG.normal(size=50_000)).astype("f4").tobytes(),
    "int16 steps": (np.round(_RNG.normal(size=33_333) * 30)).astype("<i2").tobytes(),
}


def test_the_dependency_is_what_inflates_here():
    assert inflater_name() == "libdeflate"


@pytest.mark.parametrize("name", list(_PAYLOADS))
@pytest.mark.parametrize("level", [0, 1, 6, 9])
def test_inflating_gives_zlibs_bytes_whatever_the_size_hint(name, level):
    raw = _PAYLOADS[name]
    stream = zlib.compress(raw, level)
    for hint in (len(raw), len(raw) + 1000, max(0, len(raw) - 1), None, 0):
        assert bytes(inflate(stream, hint)) == raw
    assert bytes(inflate(memoryview(stream)[:], len(raw))) == raw
    # A view into a larger buffer (a chunk inside a coalesced request body).
    body = memoryview(b"head" + stream + b"tail")[4 : 4 + len(stream)]
    assert bytes(inflate(body, len(raw))) == raw


def test_threads_inflating_at_once_get_their_own_bytes():
    # The reader inflates in a thread pool: the library must keep no shared state between calls.
    raws = [np.cumsum(_RNG.normal(size=20_000 + 37 * k)).astype("f4").tobytes() for k in range(32)]
    streams = [zlib.compress(raw, 9) for raw in raws]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(3):
            inflated = list(pool.map(inflate, streams, [len(raw) for raw in raws]))
            assert [bytes(value) for value in inflated] == raws


def test_without_libdeflate_zlib_inflates(monkeypatch):
    monkeypatch.setattr(inflate_module, "_libdeflate", None)
    assert inflater_name() == "zlib"
    raw = _PAYLOADS["float32 signal"]
    assert bytes(inflate(zlib.compress(raw, 9), len(raw))) == raw
    with pytest.raises(InflateError):
        inflate(b"not a deflate stream", 100)


def test_when_the_package_cannot_be_imported_zlib_reads_the_file(gzip_file):
    script = (
        "import sys; sys.modules['deflate'] = None\n"  # makes `import deflate` fail
        "import h5py, numpy as np\n"
        "from s3ecephys.hdf5 import open_hdf5\n"
        "from s3ecephys.hdf5.inflate import inflater_name\n"
        f"path = {str(gzip_file)!r}\n"
        "ours = open_hdf5(path, cache_dir=sys.argv[1])['lfp'][:, :]\n"
        "assert np.array_equal(ours, h5py.File(path)['lfp'][()])\n"
        "print(inflater_name())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(gzip_file.parent / "index")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "zlib"


@pytest.mark.parametrize("damage", ["truncated", "flipped", "not deflate"])
def test_a_damaged_stream_raises_a_clear_error(damage):
    raw = _PAYLOADS["float32 signal"]
    stream = bytearray(zlib.compress(raw, 9))
    if damage == "truncated":
        stream = stream[: len(stream) // 2]
    elif damage == "flipped":
        stream[len(stream) // 2] ^= 0xFF
        stream[-1] ^= 0xFF  # the checksum too, so no inflater can accept it
    else:
        stream = bytearray(b"\x00" * 64)
    with pytest.raises(InflateError, match="chunk x: .*cannot be inflated.*damaged"):
        inflate(bytes(stream), len(raw), what="chunk x")


@pytest.fixture
def gzip_file(tmp_path):
    path = tmp_path / "lfp.h5"
    values = np.cumsum(_RNG.normal(size=(5000, 6)), axis=0).astype("f4")
    with h5py.File(path, "w") as handle:
        handle.create_dataset(
            "lfp", data=values, chunks=(1000, 1), compression="gzip", compression_opts=9
        )
    return path


def open_raw(path) -> File:
    """Every value read from the file's bytes (nothing kept in the index)."""
    store = RangeStore(path)
    return File(store, build_index(store, inline_limit=0))


def test_a_damaged_chunk_names_the_dataset(gzip_file):
    with h5py.File(gzip_file, "r+") as handle:
        offset = handle["lfp"].id.get_chunk_info(2).byte_offset
    with open(gzip_file, "r+b") as raw:
        raw.seek(offset + 10)
        raw.write(b"\xff" * 32)
    f = open_raw(gzip_file)
    assert np.array_equal(f["lfp"][:, 0], h5py.File(gzip_file)["lfp"][:, 0])  # other chunks
    with pytest.raises(InflateError, match="lfp"):
        f["lfp"][:, 2]


def test_each_chunk_inflates_in_one_pass_whatever_the_filter_order(tmp_path, monkeypatch):
    """The size given to libdeflate counts a fletcher32 checksum applied before deflate, so no
    chunk needs zlib's second try."""
    path = tmp_path / "orders.h5"
    values = np.arange(4000, dtype="<f8").reshape(400, 10)
    with h5py.File(path, "w") as handle:
        handle.create_dataset(
            "usual", data=values, chunks=(100, 5), compression="gzip", shuffle=True, fletcher32=True
        )
        plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        plist.set_chunk((100, 5))
        plist.set_fletcher32()  # checksum of the raw chunk, then deflate
        plist.set_deflate(6)
        space = h5py.h5s.create_simple(values.shape)
        dataset = h5py.h5d.create(
            handle.id, b"checksum_first", h5py.h5t.IEEE_F64LE, space, dcpl=plist
        )
        dataset.write(h5py.h5s.ALL, h5py.h5s.ALL, values)
    f = open_raw(path)

    class NoZlib:
        error = zlib.error

        @staticmethod
        def decompress(data):
            raise AssertionError("zlib was needed: libdeflate got the wrong size")

    monkeypatch.setattr(inflate_module, "zlib", NoZlib)
    assert np.array_equal(f["usual"][()], values)
    assert np.array_equal(f["checksum_first"][()], values)
