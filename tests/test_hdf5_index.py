"""The file index: structure, links, attributes, layouts, its JSON form and its disk cache."""

from __future__ import annotations

import gzip
import os

import h5py
import numpy as np
import pytest

from s3ecephys.hdf5 import (
    ExternalLinkError,
    File,
    FileIndex,
    Group,
    IndexCache,
    Reference,
    default_cache_dir,
    open_hdf5,
)
from s3ecephys.hdf5.btree import parse_superblock, parse_tree_node
from s3ecephys.hdf5.dtypes import describe_dtype, dtype_from_description
from s3ecephys.hdf5.indexer import build_index
from s3ecephys.hdf5.object_header import parse_continuation_block, parse_object_header
from s3ecephys.storage.ranges import RangeStore


@pytest.fixture(scope="module")
def nwb_like(tmp_path_factory):
    """Groups with attributes, a soft link like the Allen LFP file's, a hard link, an external
    link, a dangling soft link and attributes of every kind NWB files use."""
    path = tmp_path_factory.mktemp("index") / "nwb_like.h5"
    with h5py.File(path, "w") as f:
        f.attrs["nwb_version"] = "2.2.2"
        f.attrs["fixed_text"] = np.bytes_("fixed")
        series = f.create_group("acquisition/probe_7_lfp/probe_7_lfp_data")
        series.attrs["neurodata_type"] = "ElectricalSeries"
        series.attrs["namespace"] = "core"
        data = series.create_dataset(
            "data",
            data=np.ones((5000, 4), dtype=np.float32),
            chunks=(1000, 1),
            compression="gzip",
            compression_opts=9,
        )
        data.attrs["unit"] = "volts"
        data.attrs["conversion"] = np.float32(1.0)
        data.attrs["resolution"] = -1.0
        series.create_dataset("timestamps", data=np.arange(10_000) / 1250.0)  # 80 kB
        f["acquisition/probe_7_lfp_data"] = h5py.SoftLink(
            "/acquisition/probe_7_lfp/probe_7_lfp_data"
        )
        f["acquisition/relative"] = h5py.SoftLink("probe_7_lfp")
        f["acquisition/dangling"] = h5py.SoftLink("/nowhere")
        f["acquisition/elsewhere"] = h5py.ExternalLink("other.h5", "/data")
        table = f.create_group("general/extracellular_ephys/electrodes")
        table.attrs["colnames"] = np.array(["location", "group_name"], dtype=h5py.string_dtype())
        table.attrs["description"] = "metadata about extracellular electrodes"
        table.create_dataset("id", data=np.arange(4))
        table.create_dataset("location", data=["CA1", "", "VISp", "DG"], dtype=h5py.string_dtype())
        series.create_dataset("electrodes", data=np.arange(4))
        series["electrodes"].attrs["table"] = table.ref
        series["electrodes"].attrs["integers"] = np.array([1, 2, 3], dtype=np.uint16)
        series["electrodes"].attrs["nothing"] = h5py.Empty("f8")
        f["processing/same_timestamps"] = series["timestamps"]  # a hard link
    return path


@pytest.fixture(scope="module")
def nwb_file(nwb_like, tmp_path_factory):
    return open_hdf5(nwb_like, cache_dir=tmp_path_factory.mktemp("cache"))


def test_groups_browse_like_h5py(nwb_file, nwb_like):
    theirs = h5py.File(nwb_like)
    assert list(nwb_file) == list(theirs)
    acquisition = nwb_file["acquisition"]
    assert isinstance(acquisition, Group)
    assert sorted(acquisition.keys()) == sorted(theirs["acquisition"].keys())
    assert "probe_7_lfp/probe_7_lfp_data/data" in acquisition
    assert "/acquisition/probe_7_lfp" in acquisition
    assert "missing" not in acquisition and "dangling" not in acquisition
    assert len(nwb_file["general/extracellular_ephys/electrodes"]) == 2


def test_soft_and_hard_links_lead_to_the_same_data(nwb_file):
    direct = nwb_file["acquisition/probe_7_lfp/probe_7_lfp_data/data"]
    through_soft_link = nwb_file["acquisition/probe_7_lfp_data/data"]
    relative = nwb_file["acquisition"]["relative/probe_7_lfp_data/data"]
    assert through_soft_link.name == "/acquisition/probe_7_lfp_data/data"
    assert direct.index is through_soft_link.index is relative.index
    hard = nwb_file["processing/same_timestamps"]
    assert hard.index is nwb_file["acquisition/probe_7_lfp/probe_7_lfp_data/timestamps"].index
    link = nwb_file["acquisition"].get_link("probe_7_lfp_data")
    assert (link.kind, link.target) == ("soft", "/acquisition/probe_7_lfp/probe_7_lfp_data")


def test_dangling_and_external_links_fail_clearly(nwb_file):
    with pytest.raises(KeyError, match="dangling"):
        nwb_file["acquisition/dangling"]
    with pytest.raises(ExternalLinkError, match="other.h5"):
        nwb_file["acquisition/elsewhere"]
    assert nwb_file["acquisition"].get_link("elsewhere").file == "other.h5"
    with pytest.raises(KeyError):
        nwb_file["acquisition/probe_7_lfp/probe_7_lfp_data/data/deeper"]


def test_attributes_decode_to_the_values_h5py_gives(nwb_file, nwb_like):
    theirs = h5py.File(nwb_like)
    assert nwb_file.attrs["nwb_version"] == "2.2.2"
    assert nwb_file.attrs["fixed_text"] == "fixed"  # fixed-length strings become str too
    series = nwb_file["acquisition/probe_7_lfp_data"]
    assert dict(series.attrs) == {"neurodata_type": "ElectricalSeries", "namespace": "core"}
    data = series["data"]
    assert data.attrs["unit"] == "volts"
    assert (
        data.attrs["conversion"] == theirs["acquisition/probe_7_lfp_data/data"].attrs["conversion"]
    )
    assert data.attrs["conversion"].dtype == np.float32
    colnames = nwb_file["general/extracellular_ephys/electrodes"].attrs["colnames"]
    assert colnames.tolist() == ["location", "group_name"]
    electrodes = series["electrodes"]
    assert electrodes.attrs["table"] == Reference("/general/extracellular_ephys/electrodes")
    assert nwb_file[electrodes.attrs["table"]].name == "/general/extracellular_ephys/electrodes"
    assert electrodes.attrs["integers"].dtype == np.uint16
    assert electrodes.attrs["nothing"] is None


def test_visititems_reaches_every_object_once(nwb_file, nwb_like):
    ours, theirs = [], []
    nwb_file.visititems(lambda name, item: ours.append(name))
    h5py.File(nwb_like).visititems(lambda name, item: theirs.append(name))
    assert len(ours) == len(theirs) == len(set(ours))
    # The hard-linked dataset is reached once, under either of its names.
    assert (
        len(
            set(ours)
            & {"processing/same_timestamps", "acquisition/probe_7_lfp/probe_7_lfp_data/timestamps"}
        )
        == 1
    )


def test_layouts_are_recorded_per_dataset(nwb_file, nwb_like):
    theirs = h5py.File(nwb_like)
    dataset = nwb_file["acquisition/probe_7_lfp/probe_7_lfp_data/data"]
    data = dataset.index
    assert data.layout == "chunked" and data.chunks == (1000, 1)
    # A large chunked dataset's table is read when its data first is (here: planning a read).
    assert data.chunk_table is None and data.chunk_tree is not None
    dataset.plan()
    assert len(data.chunk_table) == 20
    assert [f.name for f in data.filters] == ["deflate"] and data.filters[0].values == (9,)
    h5_data = theirs["acquisition/probe_7_lfp/probe_7_lfp_data/data"]
    info = h5_data.id.get_chunk_info_by_coord((3000, 2))
    row = data.chunk_table.lookup(np.array([[3, 2]]))[0]
    assert (data.chunk_table.offsets[row], data.chunk_table.sizes[row]) == (
        info.byte_offset,
        info.size,
    )
    timestamps = nwb_file["acquisition/probe_7_lfp/probe_7_lfp_data/timestamps"].index
    assert timestamps.layout == "contiguous"
    h5_timestamps = theirs["acquisition/probe_7_lfp/probe_7_lfp_data/timestamps"]
    assert timestamps.offset == h5_timestamps.id.get_offset()
    assert timestamps.storage_size == 80_000
    assert timestamps.inline is None  # above the 64 KiB kept in the index


def test_small_datasets_are_kept_in_the_index_and_large_ones_only_described(nwb_file):
    assert nwb_file["general/extracellular_ephys/electrodes/id"].index.inline is not None
    assert nwb_file["general/extracellular_ephys/electrodes/location"].index.inline is not None
    assert nwb_file["acquisition/probe_7_lfp/probe_7_lfp_data/data"].index.inline is None


def test_the_index_survives_its_json_form(nwb_like):
    index = build_index(RangeStore(nwb_like))
    again = FileIndex.loads(index.dumps())
    assert again.to_json() == index.to_json()
    assert set(again.objects) == set(index.objects)
    for path, entry in index.objects.items():
        if hasattr(entry, "chunk_table") and entry.chunk_table is not None:
            copy = again.objects[path].chunk_table
            assert np.array_equal(copy.offsets, entry.chunk_table.offsets)
            assert np.array_equal(copy.grid, entry.chunk_table.grid)


@pytest.mark.parametrize(
    "dtype",
    [
        np.dtype(">f4"),
        np.dtype("<i8"),
        np.dtype("bool"),
        np.dtype([("a", "<i4"), ("b", ">f8", (3,))]),
        np.dtype(
            {"names": ["x", "y"], "formats": ["u1", "<f4"], "offsets": [0, 4], "itemsize": 12}
        ),
        h5py.string_dtype(),
        h5py.string_dtype("ascii"),
        h5py.string_dtype("utf-8", 7),
        h5py.enum_dtype({"RED": 0, "GREEN": 1}, basetype="u1"),
        h5py.vlen_dtype(np.int32),
    ],
)
def test_dtype_descriptions_round_trip(dtype):
    rebuilt = dtype_from_description(describe_dtype(dtype))
    assert rebuilt == dtype
    assert rebuilt.metadata == dtype.metadata


def test_a_second_open_uses_the_cached_index(nwb_like, tmp_path):
    first = open_hdf5(nwb_like, cache_dir=tmp_path)
    assert first.store.stats.requests > 0
    second = open_hdf5(nwb_like, cache_dir=tmp_path)
    assert second.store.stats.requests == 0  # a local file: one stat(), no reads
    assert second.index.to_json() == first.index.to_json()
    assert len(list((tmp_path / "hdf5-index").iterdir())) == 1


def test_a_changed_file_is_indexed_again(tmp_path):
    path = tmp_path / "changing.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3)
    assert open_hdf5(path, cache_dir=tmp_path / "cache")["x"].shape == (3,)
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(5)
    os.utime(path, ns=(1, 1))  # a different mtime even on coarse clocks
    assert open_hdf5(path, cache_dir=tmp_path / "cache")["x"].shape == (5,)


def test_a_corrupt_cache_file_is_rebuilt_not_fatal(nwb_like, tmp_path):
    open_hdf5(nwb_like, cache_dir=tmp_path)
    (cached,) = (tmp_path / "hdf5-index").iterdir()
    cached.write_bytes(gzip.compress(b'{"format": 1, "truncated'))
    reopened = open_hdf5(nwb_like, cache_dir=tmp_path)
    assert reopened.store.stats.requests > 0  # rebuilt
    assert FileIndex.loads(cached.read_bytes()).url == reopened.index.url
    cached.write_bytes(b"not gzip at all")
    assert "acquisition" in open_hdf5(nwb_like, cache_dir=tmp_path)


def test_the_cache_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("S3ECEPHYS_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("S3ECEPHYS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "s3ecephys"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "s3ecephys"
    assert IndexCache().directory == tmp_path / "home" / ".cache" / "s3ecephys" / "hdf5-index"


def test_the_btree_parser_finds_the_nodes_h5py_walks(tmp_path):
    """Prefetching relies on reading child addresses out of chunk B-tree nodes."""
    path = tmp_path / "many_chunks.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.zeros((3000, 5), np.float32), chunks=(10, 1))
    content = path.read_bytes()
    with h5py.File(path) as f:
        chunk_addresses = set()
        f["x"].id.chunk_iter(lambda info: chunk_addresses.add(info.byte_offset))
    sizes = parse_superblock(content[:64])
    assert (sizes.offsets, sizes.lengths) == (8, 8)
    nodes = [n for n in range(len(content)) if content.startswith(b"TREE", n)]
    parsed = [parse_tree_node(content[n : n + 4096], len(content), sizes) for n in nodes]
    chunk_nodes = [node for node in parsed if node is not None and node.kind == 1]
    leaves = [node for node in chunk_nodes if node.level == 0]
    assert {a for leaf in leaves for a in leaf.children} == chunk_addresses
    inner = {a for node in chunk_nodes if node.level > 0 for a in node.children}
    assert inner and inner <= set(nodes)


def test_indexing_a_many_chunk_dataset_costs_few_round_trips(tmp_path):
    path = tmp_path / "many_chunks.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "x", data=np.zeros((20_000, 20), np.float32), chunks=(10, 1), compression="gzip"
        )
    # gap=0: neighbouring metadata is not merged, as on S3 where B-tree leaves lie far apart.
    store = RangeStore(path, gap=0)
    f = File(store, build_index(store))
    # Opening leaves the chunk table for later: the file's ends and its few object headers.
    assert store.stats.round_trips <= 2 and f["x"].index.chunk_table is None
    store.stats.reset()
    plan = f["x"].plan()
    with h5py.File(path) as theirs:
        chunks = []
        theirs["x"].id.chunk_iter(lambda info: chunks.append((info.byte_offset, info.size)))
    assert sorted(plan.ranges) == sorted(chunks)
    # h5py alone would read ~600 B-tree nodes one by one; here one wave per level.
    assert store.stats.round_trips <= 3


def test_object_headers_point_to_their_continuations_heaps_and_chunk_trees(tmp_path):
    path = tmp_path / "headers.h5"
    with h5py.File(path, "w") as f:
        group = f.create_group("table")
        f.create_dataset("filler", data=np.zeros(10_000))
        # Attributes added later do not fit the header: it continues elsewhere.
        for number in range(12):
            group.attrs[f"text{number}"] = f"value {number}"
        group.attrs["colnames"] = np.array(["a", "b"], dtype=h5py.string_dtype())
        group.create_dataset("chunked", data=np.zeros((100, 3)), chunks=(10, 3))
    content = path.read_bytes()
    with h5py.File(path) as f:
        address = h5py.h5o.get_info(f["table"].id).addr
    hints = parse_object_header(content[address : address + 4096], len(content))
    for block, length, version in hints.continuations:
        hints.merge(
            parse_continuation_block(content[block : block + length], version, len(content))
        )
    assert hints.continuations
    assert hints.heap_collections
    assert all(content[a : a + 4] == b"GCOL" for a in hints.heap_collections)
    # The group's B-tree and local heap.
    assert {content[a : a + 4] for a in hints.metadata} == {b"TREE", b"HEAP"}


def test_indexing_a_file_of_many_small_groups_costs_few_round_trips(tmp_path):
    """Like a session file's interval tables: groups of columns, string attributes, data
    between them. h5py alone pays a round trip per header, heap and tree node it reads."""
    path = tmp_path / "tables.h5"
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f.create_dataset("first", data=rng.random(200_000))  # the rest lies past the head
        for table in range(6):
            group = f.create_group(f"intervals/stimulus{table}_presentations")
            group.attrs["neurodata_type"] = "TimeIntervals"
            group.attrs["colnames"] = np.array(["start_time", "name"], dtype=h5py.string_dtype())
            group.create_dataset("start_time", data=np.arange(5000) * 0.25)
            group.create_dataset("name", data=["gabors"] * 5000, dtype=h5py.string_dtype())
            group.create_dataset("id", data=np.arange(5000))
            f.create_dataset(f"filler{table}", data=rng.random(100_000))
    store = RangeStore(path, gap=0)
    index = build_index(store)
    assert len(index.objects) == 3 + 6 * 5  # root, first, intervals; per table 5 objects
    assert index.objects["/intervals/stimulus3_presentations/name"].inline is not None
    assert store.stats.round_trips <= 12
