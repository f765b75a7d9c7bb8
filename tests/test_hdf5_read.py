"""Reading datasets gives exactly what h5py gives, whatever the layout, filters and selection.

Files are written with h5py in a temporary folder and read back through a local RangeStore. Most
tests index with ``inline_limit=0`` so that even small datasets are read from their bytes (the
path large datasets take) rather than from values kept in the index.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3ecephys.hdf5 import File, Reference, UnsupportedFilterError, open_hdf5
from s3ecephys.hdf5.codecs import ChecksumError
from s3ecephys.hdf5.indexer import build_index
from s3ecephys.hdf5.through_h5py import reads_through_h5py
from s3ecephys.storage.ranges import RangeStore


def open_raw(path) -> File:
    """The file indexed with nothing kept inline: every read decodes the stored bytes."""
    store = RangeStore(path)
    return File(store, build_index(store, inline_limit=0))


def same(ours, theirs) -> None:
    assert type(ours) is type(theirs) or (np.isscalar(ours) and np.isscalar(theirs))
    assert np.asarray(ours).dtype == np.asarray(theirs).dtype
    assert np.array_equal(ours, theirs, equal_nan=np.asarray(ours).dtype.kind == "f")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """One file with the layouts and filters this engine reads."""
    path = tmp_path_factory.mktemp("read") / "sample.h5"
    rng = np.random.default_rng(7)
    with h5py.File(path, "w") as f:
        lfp = rng.normal(size=(1000, 7)).astype(np.float32)
        f.create_dataset("gzip9", data=lfp, chunks=(128, 1), compression="gzip", compression_opts=9)
        f.create_dataset(
            "gzip1_shuffle_fletcher",
            data=lfp.astype(np.float64),
            chunks=(100, 3),
            compression="gzip",
            compression_opts=1,
            shuffle=True,
            fletcher32=True,
        )
        f.create_dataset("contiguous", data=rng.integers(0, 1000, size=(300, 11)))
        f.create_dataset("contiguous_1d", data=np.cumsum(rng.random(5000)))
        f.create_dataset(
            "big_endian",
            data=np.arange(600, dtype=">i4").reshape(30, 20),
            chunks=(7, 6),
            compression="gzip",
        )
        f.create_dataset("big_endian_contiguous", data=np.linspace(0, 1, 50, dtype=">f8"))
        f.create_dataset("compact", data=np.arange(20, dtype=np.int16), dcpl=_compact_plist())
        f.create_dataset("scalar", data=3.5)
        f.create_dataset("booleans", data=rng.random(200) > 0.5, chunks=(64,))
        f.create_dataset(
            "uint8",
            data=np.arange(256, dtype=np.uint8),
            chunks=(100,),
            compression="gzip",
            shuffle=True,
        )
        f.create_dataset("empty", shape=(0, 4), dtype=np.float32)
        records = np.zeros(40, dtype=[("start", "<f8"), ("count", "<i4"), ("flag", "u1")])
        records["start"] = np.arange(40) / 3
        records["count"] = np.arange(40)
        f.create_dataset("compound", data=records, chunks=(16,), compression="gzip")
        # Chunked with a fill value and most chunks never written.
        sparse = f.create_dataset(
            "sparse",
            shape=(50, 40),
            chunks=(10, 10),
            dtype=np.float32,
            fillvalue=-1.5,
            compression="gzip",
        )
        sparse[12:18, 5:25] = 7.0
        f.create_dataset("unwritten_contiguous", shape=(20,), dtype=np.int32, fillvalue=9)
        f.create_dataset("unwritten_chunked", shape=(20, 3), chunks=(5, 3), dtype=np.int16)
    return path


def _compact_plist():
    plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    plist.set_layout(h5py.h5d.COMPACT)
    return plist


SELECTIONS = [
    (),
    Ellipsis,
    np.s_[3],
    np.s_[-1],
    np.s_[10:20],
    np.s_[::7],
    np.s_[5:900:13],
    np.s_[[0, 3, 4, 19]],
    np.s_[2:2],
]

SELECTIONS_2D = [
    np.s_[120:260, :],
    np.s_[:, 2],
    np.s_[3, 4],
    np.s_[-5:, 1:6:2],
    np.s_[::50, [0, 2, 5]],
    np.s_[[1, 2, 3, 90], 1:3],
    np.s_[..., -1],
    np.s_[0:1, 0:1],
]


@pytest.mark.parametrize(
    "name",
    [
        "gzip9",
        "gzip1_shuffle_fletcher",
        "contiguous",
        "big_endian",
        "sparse",
        "unwritten_chunked",
        "empty",
    ],
)
@pytest.mark.parametrize("selection", SELECTIONS + SELECTIONS_2D)
def test_two_dimensional_reads_equal_h5py(sample, name, selection):
    ours, theirs = open_raw(sample)[name], h5py.File(sample)[name]
    try:
        expected = theirs[selection]
    except (IndexError, ValueError, TypeError):
        with pytest.raises((IndexError, TypeError)):
            ours[selection]
    else:
        same(ours[selection], expected)


@pytest.mark.parametrize(
    "name",
    [
        "contiguous_1d",
        "big_endian_contiguous",
        "booleans",
        "uint8",
        "compound",
        "unwritten_contiguous",
        "compact",
    ],
)
@pytest.mark.parametrize("selection", SELECTIONS)
def test_one_dimensional_reads_equal_h5py(sample, name, selection):
    ours, theirs = open_raw(sample)[name], h5py.File(sample)[name]
    same(ours[selection], theirs[selection])


def test_a_scalar_dataset_gives_a_scalar_for_empty_tuple_and_an_array_for_ellipsis(sample):
    ours, theirs = open_raw(sample)["scalar"], h5py.File(sample)["scalar"]
    same(ours[()], theirs[()])
    same(ours[...], theirs[...])
    assert ours.shape == () and ours.ndim == 0 and ours.size == 1


def test_selections_h5py_refuses_follow_numpy(sample):
    """Negative steps and unsorted or repeated lists: numpy's answer on the whole array."""
    ours, whole = open_raw(sample)["gzip9"], h5py.File(sample)["gzip9"][()]
    for selection in (np.s_[::-3], np.s_[500:100:-7, ::-1], np.s_[[9, 2, 2, 700], 3]):
        same(ours[selection], whole[selection])


def test_metadata_matches_h5py_without_reading(sample):
    f = open_raw(sample)
    f.store.stats.reset()
    for name in ("gzip9", "gzip1_shuffle_fletcher", "contiguous", "big_endian", "sparse"):
        ours, theirs = f[name], h5py.File(sample)[name]
        assert (ours.shape, ours.dtype, ours.chunks, ours.ndim, ours.size, ours.nbytes) == (
            theirs.shape,
            theirs.dtype,
            theirs.chunks,
            theirs.ndim,
            theirs.size,
            theirs.nbytes,
        )
        assert (ours.compression, ours.compression_opts, ours.shuffle, ours.fletcher32) == (
            theirs.compression,
            theirs.compression_opts,
            theirs.shuffle,
            theirs.fletcher32,
        )
        assert ours.fillvalue == theirs.fillvalue and ours.maxshape == theirs.maxshape
        assert len(ours) == len(theirs)
    assert f.store.stats.requests == 0


def test_a_window_fetches_only_the_chunks_it_touches_in_one_call(sample):
    f = open_raw(sample)
    data = f["gzip9"]  # chunks of 128 rows x 1 column
    plan = data.plan(np.s_[130:250, :])
    assert len(plan.ranges) == 7  # one chunk row (128..256) x 7 columns
    table = data.index.chunk_table
    touched = table.lookup(np.array([[1, column] for column in range(7)]))
    assert plan.bytes_needed == int(table.sizes[touched].sum())
    f.store.stats.reset()
    data[130:250, :]
    assert f.store.stats.round_trips == 1
    assert f.store.stats.bytes <= plan.bytes_needed + 7 * 512 * 1024  # gaps merged at most


def test_contiguous_reads_fetch_only_the_rows_asked_for(sample):
    f = open_raw(sample)
    data = f["contiguous"]  # 300 x 11 int64: 88 bytes per row
    plan = data.plan(np.s_[100:110, 3])
    assert plan.ranges == [(data.index.offset + 100 * 88, 10 * 88)]
    f.store.stats.reset()
    data[100:110, 3]
    assert (f.store.stats.requests, f.store.stats.bytes) == (1, 880)


def test_far_apart_positions_of_a_contiguous_array_are_separate_ranges(tmp_path):
    path = tmp_path / "long.h5"
    with h5py.File(path, "w") as f:
        f["values"] = np.arange(1_000_000, dtype=np.float64)
    data = open_raw(path)["values"]
    plan = data.plan(np.s_[[5, 6, 7, 500_000, 999_999]])
    assert [size for _, size in plan.ranges] == [24, 8, 8]
    assert np.array_equal(data[[5, 6, 7, 500_000, 999_999]], [5, 6, 7, 500_000, 999_999])
    # A dense stride reads through its gaps: one range, not 100,000.
    assert len(data.plan(np.s_[::10]).ranges) == 1


def test_several_reads_asked_together_are_one_fetch(sample):
    f = open_raw(sample)
    theirs = h5py.File(sample)
    rows = [np.s_[0:5], np.s_[300:302], np.s_[990:]]
    f["gzip9"].plan()  # its chunk table, read on first use
    f.store.stats.reset()
    values = f["gzip9"].read_many(rows)
    assert f.store.stats.round_trips == 1
    for row, value in zip(rows, values, strict=True):
        same(value, theirs["gzip9"][row])
    names = ["contiguous", "big_endian", "sparse", "compact"]
    f.load_chunk_tables(names)
    f.store.stats.reset()
    columns = f.read_many(names)
    assert f.store.stats.round_trips == 1
    for name, column in zip(names, columns, strict=True):
        same(column, theirs[name][()])


def test_unwritten_chunks_read_as_the_fill_value_without_fetching_them(sample):
    f = open_raw(sample)
    sparse = f["sparse"]
    assert sparse.plan(np.s_[30:50, :]).ranges == []
    f.store.stats.reset()
    assert np.all(sparse[30:50, :] == np.float32(-1.5))
    assert f.store.stats.requests == 0


def test_a_filter_only_h5py_has_is_read_through_h5py(tmp_path):
    path = tmp_path / "lzf.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("lzf", data=np.arange(100_000), chunks=(10_000,), compression="lzf")
    f = open_hdf5(path, cache_dir=tmp_path / "cache")
    assert f["lzf"].compression == "lzf"
    assert reads_through_h5py(f["lzf"].index)
    same(f["lzf"][5:99_000:7], h5py.File(path)["lzf"][5:99_000:7])
    same(f["lzf"][[3, 1, 3]], np.array([3, 1, 3]))
    assert np.array_equal(f["lzf"].to_dask()[10:20].compute(), np.arange(10, 20))


def test_a_filter_neither_reader_has_is_named_when_that_dataset_is_read(tmp_path, monkeypatch):
    path = tmp_path / "lzf.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("lzf", data=np.arange(100_000), chunks=(10_000,), compression="lzf")
        f.create_dataset("fine", data=np.arange(10))
    real = h5py.h5z.filter_avail
    monkeypatch.setattr(h5py.h5z, "filter_avail", lambda code: code != 32000 and real(code))
    f = open_hdf5(path, cache_dir=tmp_path / "cache")  # opening works
    assert f["fine"][3] == 3
    assert f["lzf"].compression == "lzf"
    with pytest.raises(UnsupportedFilterError, match="'lzf'"):
        f["lzf"][:10]
    with pytest.raises(UnsupportedFilterError, match="'lzf'"):
        f["lzf"].to_dask()


def test_a_corrupt_chunk_fails_its_checksum(tmp_path):
    path = tmp_path / "checked.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.arange(1000.0), chunks=(1000,), fletcher32=True)
    ((offset, _),) = open_raw(path)["x"].plan().ranges
    with open(path, "r+b") as handle:
        handle.seek(int(offset) + 100)
        handle.write(b"\xff")
    with pytest.raises(ChecksumError):
        open_raw(path)["x"][:]


def test_string_and_reference_datasets_read_like_h5py_from_the_index(tmp_path):
    path = tmp_path / "objects.h5"
    with h5py.File(path, "w") as f:
        f["names"] = np.array(["CA1", "", "VISp", "ünïcode"], dtype=h5py.string_dtype())
        f["ascii"] = np.array([b"a", b"bc"], dtype=h5py.string_dtype("ascii"))
        f["fixed"] = np.array([b"ab", b"c"], dtype="S2")
        f["label"] = h5py.Empty(dtype="f4")
        table = f.create_group("table")
        refs = f.create_dataset("refs", shape=(2,), dtype=h5py.ref_dtype)
        refs[0] = table.ref
        kinds = np.dtype([("idx_start", "<i4"), ("count", "<i4"), ("timeseries", h5py.ref_dtype)])
        rows = f.create_dataset("timeseries", shape=(2,), dtype=kinds)
        rows[0] = (0, 5, f["names"].ref)
        rows[1] = (5, 2, table.ref)
    ours = open_raw(path)
    theirs = h5py.File(path)
    same(ours["names"][()], theirs["names"][()])
    same(ours["names"][1:3], theirs["names"][1:3])
    assert list(ours["names"].asstr()[()]) == list(theirs["names"].asstr()[()])
    same(ours["ascii"][()], theirs["ascii"][()])
    same(ours["fixed"][()], theirs["fixed"][()])
    assert ours["label"][()] is None
    assert [ref.path for ref in ours["refs"][()]] == ["/table", None]
    assert h5py.check_ref_dtype(ours["refs"].dtype) is Reference
    assert ours[ours["refs"][0]].name == "/table"
    rows = ours["timeseries"][()]
    assert rows["count"].tolist() == [5, 2]
    assert [ref.path for ref in rows["timeseries"]] == ["/names", "/table"]
    ours.store.stats.reset()
    ours["names"][()]
    assert ours.store.stats.requests == 0


# -- property test against h5py --------------------------------------------------------------


@st.composite
def stored_arrays(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 12), min_size=ndim, max_size=ndim)))
    chunks = tuple(draw(st.integers(1, n)) for n in shape)
    dtype = draw(st.sampled_from(["<f4", ">f8", "<i2", ">u4", "u1"]))
    options = {
        "chunked": draw(st.booleans()),
        "gzip": draw(st.sampled_from([None, 1, 9])),
        "shuffle": draw(st.booleans()),
        "fletcher32": draw(st.booleans()),
        "fill": draw(st.sampled_from([0, 3])),
        "written": draw(st.sampled_from(["all", "part", "none"])),
    }
    return shape, chunks, np.dtype(dtype), options


@st.composite
def axis_selections(draw, shape):
    items = []
    array_used = False
    for length in shape:
        kind = draw(
            st.sampled_from(["int", "slice", "list"] if not array_used else ["int", "slice"])
        )
        if kind == "int":
            items.append(draw(st.integers(-length, length - 1)))
        elif kind == "slice":
            start = draw(st.none() | st.integers(-length - 2, length + 2))
            stop = draw(st.none() | st.integers(-length - 2, length + 2))
            step = draw(st.none() | st.integers(1, length + 1))
            items.append(slice(start, stop, step))
        else:
            array_used = True
            chosen = draw(
                st.lists(st.integers(0, length - 1), min_size=1, max_size=length, unique=True)
            )
            items.append(sorted(chosen))
    return tuple(items)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), stored=stored_arrays())
def test_any_selection_of_any_stored_array_equals_h5py(tmp_path, data, stored):
    shape, chunks, dtype, options = stored
    path = tmp_path / "random.h5"
    values = (np.arange(int(np.prod(shape))) % 251).astype(dtype).reshape(shape)
    chunked = options["chunked"] or options["gzip"] or options["shuffle"] or options["fletcher32"]
    with h5py.File(path, "w") as f:
        dataset = f.create_dataset(
            "x",
            shape=shape,
            dtype=dtype,
            chunks=chunks if chunked else None,
            compression="gzip" if options["gzip"] else None,
            compression_opts=options["gzip"],
            shuffle=options["shuffle"],
            fletcher32=options["fletcher32"],
            fillvalue=options["fill"],
        )
        if options["written"] == "all":
            dataset[...] = values
        elif options["written"] == "part":
            dataset[: max(1, shape[0] // 2)] = values[: max(1, shape[0] // 2)]
    selection = data.draw(axis_selections(shape))
    expected = h5py.File(path)["x"][selection]
    same(open_raw(path)["x"][selection], expected)


def test_chunks_are_decoded_as_their_bytes_arrive_and_a_bad_one_stops_the_read(
    sample, monkeypatch
):
    from s3ecephys.hdf5 import reader

    events = []
    real_fetch_each = RangeStore.fetch_each

    def recorded(self, ranges, **options):
        arrivals = real_fetch_each(self, ranges, **options)

        def one_chunk_at_a_time():
            try:
                for batch in arrivals:
                    for item in batch:
                        events.append("arrived")
                        yield [item]
            finally:
                events.append("closed")

        return one_chunk_at_a_time()

    real_decode = reader.decode_chunk

    def decode(body, *arguments, **options):
        events.append("decoded")
        return real_decode(body, *arguments, **options)

    monkeypatch.setattr(RangeStore, "fetch_each", recorded)
    monkeypatch.setattr(reader, "decode_chunk", decode)
    f = open_raw(sample)
    same(f["gzip9"][:300, :2], h5py.File(sample)["gzip9"][:300, :2])
    assert events[:4] == ["arrived", "decoded", "arrived", "decoded"]
    assert events.count("decoded") == 6 and events[-1] == "closed"

    events.clear()
    monkeypatch.setattr(reader, "decode_chunk", lambda *arguments, **options: b"short")
    with pytest.raises(OSError, match="damaged"):
        f["gzip9"][:300, :2]
    assert events == ["arrived", "closed"]  # the read stopped there: nothing else decoded
