"""Chunk tables read straight from chunked datasets' B-trees: as h5py lists them, or an error."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3ecephys.hdf5 import open_hdf5
from s3ecephys.hdf5.btree import parse_chunk_node
from s3ecephys.hdf5.chunk_btree import ChunkTreeError, read_chunk_tables
from s3ecephys.hdf5.codecs import UnsupportedFilterError
from s3ecephys.hdf5.indexer import build_index
from s3ecephys.storage.ranges import RangeStore


def h5py_chunks(path, name="x") -> list[tuple[tuple[int, ...], int, int, int]]:
    """(origin, address, stored size, filter mask) of every chunk, as h5py lists them."""
    rows = []
    with h5py.File(path) as f:
        f[name].id.chunk_iter(
            lambda info: rows.append(
                (tuple(info.chunk_offset), info.byte_offset, info.size, info.filter_mask)
            )
        )
    return rows


def tree_chunks(path, name="/x") -> tuple[list[tuple[tuple[int, ...], int, int, int]], int]:
    """The same rows read by :func:`read_chunk_tables`, and the round trips it took."""
    store = RangeStore(path)
    entry = build_index(store, inline_limit=0).objects[name]
    assert entry.chunk_tree is not None and entry.chunk_table is None
    store.stats.reset()
    (table,) = read_chunk_tables(store.fetch, [(entry.chunk_tree, entry.chunks)], store.info().size)
    origins = table.grid * np.array(entry.chunks)
    rows = [
        (tuple(int(v) for v in origin), int(offset), int(size), int(mask))
        for origin, offset, size, mask in zip(
            origins, table.offsets, table.sizes, table.filter_masks, strict=True
        )
    ]
    return rows, store.stats.round_trips


layouts = st.integers(1, 3).flatmap(
    lambda ndim: st.tuples(
        st.lists(st.integers(1, 40), min_size=ndim, max_size=ndim),
        st.lists(st.integers(1, 9), min_size=ndim, max_size=ndim),
    )
)


@settings(max_examples=40, deadline=None)
@given(
    layout=layouts,
    written=st.floats(0.0, 1.0),
    filters=st.sampled_from([{}, {"compression": "gzip"}, {"shuffle": True, "fletcher32": True}]),
    seed=st.integers(0, 2**16),
)
def test_the_table_read_from_the_btree_is_h5pys(tmp_path_factory, layout, written, filters, seed):
    shape, chunks = (tuple(v) for v in layout)
    path = tmp_path_factory.mktemp("btree") / "x.h5"
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        # Resizable, so a chunk may be larger than the dataset (an edge chunk on every axis).
        dataset = f.create_dataset(
            "x",
            shape=shape,
            maxshape=(None,) * len(shape),
            dtype="<i4",
            chunks=chunks,
            fillvalue=-1,
            **filters,
        )
        # Only some chunks are written: the others are absent from the tree.
        for origin in np.ndindex(*(-(-n // c) for n, c in zip(shape, chunks, strict=True))):
            if rng.random() < written:
                box = tuple(
                    slice(i * c, min(n, (i + 1) * c))
                    for i, c, n in zip(origin, chunks, shape, strict=True)
                )
                dataset[box] = rng.integers(0, 100, size=[s.stop - s.start for s in box])
    if not h5py_chunks(path):
        return  # nothing written: HDF5 allocates no tree
    rows, _ = tree_chunks(path)
    assert rows == h5py_chunks(path)


def test_a_tree_of_thousands_of_chunks_is_read_one_level_per_round_trip(tmp_path):
    path = tmp_path / "deep.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.arange(6000, dtype="<f4"), chunks=(1,))
    rows, round_trips = tree_chunks(path)
    assert rows == h5py_chunks(path)
    assert round_trips == 3  # 6,000 leaves' entries: root, ~2 inner nodes, ~100 leaves


def test_a_damaged_tree_raises_instead_of_giving_a_wrong_table(tmp_path):
    path = tmp_path / "damaged.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.arange(500, dtype="<f4"), chunks=(5,))
    store = RangeStore(path)
    entry = build_index(store, inline_limit=0).objects["/x"]
    content = bytearray(path.read_bytes())
    root = parse_chunk_node(bytes(content[entry.chunk_tree.address :]), 1, len(content))
    assert root.level == 1  # 100 chunks: a root over two leaves
    # The first leaf's first key (after the 24-byte node header: size, filter mask, offsets):
    # its chunk's origin moved off the chunk grid.
    content[root.children[0] + 24 + 8] = 3
    path.write_bytes(bytes(content))
    with pytest.raises(ChunkTreeError):
        read_chunk_tables(RangeStore(path).fetch, [(entry.chunk_tree, entry.chunks)], len(content))


def test_chunks_indexed_otherwise_are_listed_by_h5py_at_index_time(tmp_path):
    """HDF5's newer format indexes chunks in other structures; h5py reads those."""
    path = tmp_path / "latest.h5"
    values = np.arange(30_000, dtype="<f8").reshape(3000, 10)
    with h5py.File(path, "w", libver="latest") as f:
        f.create_dataset("fixed", data=values, chunks=(100, 5), compression="gzip")
        f.create_dataset("growing", data=values, chunks=(100, 5), maxshape=(None, 10))
    f = open_hdf5(path, cache_dir=tmp_path / "cache")
    for name in ("fixed", "growing"):
        assert f[name].index.chunk_tree is None and f[name].index.chunk_table is not None
        assert np.array_equal(f[name][1234:2345, 3:9], values[1234:2345, 3:9])


def test_a_tree_this_reader_cannot_walk_is_left_to_h5py(tmp_path, monkeypatch):
    path = tmp_path / "fallback.h5"
    values = np.arange(100_000, dtype="<f4")
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=values, chunks=(1000,), compression="gzip")

    def cannot(*arguments):
        raise ChunkTreeError("pretend the tree is of an unknown kind")

    monkeypatch.setattr("s3ecephys.hdf5.chunk_tables.read_chunk_tables", cannot)
    f = open_hdf5(path, cache_dir=tmp_path / "cache")
    assert np.array_equal(f["x"][5555:77777], values[5555:77777])


def test_a_chunk_table_read_once_is_kept_beside_the_index(tmp_path):
    path = tmp_path / "kept.h5"
    values = np.arange(200_000, dtype="<f4").reshape(20_000, 10)
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=values, chunks=(100, 1), compression="gzip")
    first = open_hdf5(path, cache_dir=tmp_path / "cache")
    assert np.array_equal(first["x"][:, 4], values[:, 4])
    second = open_hdf5(path, cache_dir=tmp_path / "cache")
    assert second["x"].index.chunk_table is None  # not in the index itself ...
    assert np.array_equal(second["x"][:, 4], values[:, 4])
    assert second.store.stats.round_trips == 1  # ... but beside it: only the data is read


def test_all_chunk_tables_can_be_read_at_once_ahead_of_use(tmp_path):
    path = tmp_path / "ahead.h5"
    with h5py.File(path, "w") as f:
        for name in ("a", "b", "c"):
            f.create_dataset(name, data=np.arange(300_000, dtype="<f4"), chunks=(100,))
    f = open_hdf5(path, cache_dir=tmp_path / "cache")
    f.store.stats.reset()
    f.load_chunk_tables()
    assert f.store.stats.round_trips == 2  # three trees walked together: roots, then leaves
    reopened = open_hdf5(path, cache_dir=tmp_path / "cache")
    reopened.load_chunk_tables()
    assert reopened.store.stats.requests == 0
    assert [len(reopened[name].plan().ranges) for name in "abc"] == [3000] * 3


def test_a_file_and_its_datasets_pickle(tmp_path):
    path = tmp_path / "pickled.h5"
    values = np.arange(50_000, dtype="<f4")
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=values, chunks=(1000,))
    f = open_hdf5(path, cache_dir=tmp_path / "cache")
    copy = pickle.loads(pickle.dumps(f))
    assert np.array_equal(copy["x"][123:4567], values[123:4567])
    assert np.array_equal(pickle.loads(pickle.dumps(f["x"]))[-10:], values[-10:])


def test_a_damaged_cached_chunk_table_is_read_again(tmp_path):
    path = tmp_path / "cached.h5"
    values = np.arange(50_000, dtype="<f4")
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=values, chunks=(1000,))
    assert np.array_equal(open_hdf5(path, cache_dir=tmp_path / "cache")["x"][:], values)
    (saved,) = (tmp_path / "cache").rglob("*.npz")
    saved.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    assert np.array_equal(open_hdf5(path, cache_dir=tmp_path / "cache")["x"][:], values)


def test_a_dataset_that_cannot_be_decoded_fails_before_its_table_is_read(tmp_path, monkeypatch):
    path = tmp_path / "lzf.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.arange(100_000), chunks=(1000,), compression="lzf")
    real = h5py.h5z.filter_avail  # h5py lacking lzf too: nothing can decode it
    monkeypatch.setattr(h5py.h5z, "filter_avail", lambda code: code != 32000 and real(code))
    f = open_hdf5(path, cache_dir=tmp_path / "cache")
    f.store.stats.reset()
    with pytest.raises(UnsupportedFilterError, match="'lzf'"):
        f["x"][:10]
    assert f.store.stats.requests == 0


@pytest.mark.parametrize("damage", ["signature", "level", "duplicate"])
def test_a_tree_that_is_not_what_it_should_be_raises(tmp_path, damage):
    path = tmp_path / "damaged.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.arange(500, dtype="<f4"), chunks=(5,))
    entry = build_index(RangeStore(path), inline_limit=0).objects["/x"]
    content = bytearray(path.read_bytes())
    root = parse_chunk_node(bytes(content[entry.chunk_tree.address :]), 1, len(content))
    first, second = root.children
    if damage == "signature":
        content[first : first + 4] = b"EERT"
    elif damage == "level":
        content[first + 5] = 1  # a leaf that claims to be an inner node
    else:  # both children of the root are the same leaf: its chunks listed twice
        # Header 24 bytes, then (key of 24 bytes, child address of 8) per child: the second.
        at = entry.chunk_tree.address + 24 + 32 + 24
        content[at : at + 8] = first.to_bytes(8, "little")
    path.write_bytes(bytes(content))
    with pytest.raises(ChunkTreeError):
        read_chunk_tables(RangeStore(path).fetch, [(entry.chunk_tree, entry.chunks)], len(content))
