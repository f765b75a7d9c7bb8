"""Conformance: every HDF5 feature real files use reads through ``open_hdf5`` as h5py reads it.

Each file of :mod:`hdf5_cases` (one per library-version bound: superblock versions 0, 2 and 3,
chunks indexed by v1 B-trees, v2 B-trees, fixed and extensible arrays, single chunks and implicit
indexes) is opened from a local path and from the local S3, once indexed as a user opens it
(small datasets kept in the index) and once with nothing kept in the index (every value decoded
from its stored bytes). Every dataset, random selections of it, every attribute and every group's
links must equal h5py's, or fail with an error that names the feature.
"""

from __future__ import annotations

import functools

import dask
import h5py
import numpy as np
import pytest
from hdf5_cases import (
    NEW_CHUNK_INDEXES,
    SUPERBLOCK_VERSIONS,
    assert_same,
    attribute_value,
    dataset_paths,
    random_selections,
    write_case_file,
)

from s3ecephys.hdf5 import (
    ExternalLinkError,
    File,
    NamedDatatypeError,
    UnreadableDatasetError,
    open_hdf5,
)
from s3ecephys.hdf5 import indexer as indexer_module
from s3ecephys.storage.ranges import RangeStore

# Datasets whose values this engine refuses, with the words its error must contain.
REFUSED = {"virtual_elsewhere": "virtual"}


@pytest.fixture(scope="module", params=list(SUPERBLOCK_VERSIONS))
def case_file(request, tmp_path_factory, local_s3):
    libver = request.param
    folder = tmp_path_factory.mktemp(f"conformance-{libver}")
    path = folder / "cases.h5"
    write_case_file(path, libver)
    key = f"tests/conformance/{libver}/cases.h5"
    local_s3.put_object(key, path.read_bytes())
    return libver, path, local_s3.url(key), local_s3.storage_options


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow)])
def where(request):
    return request.param


# How the file is indexed: as a user opens it (small values kept in the index); with nothing
# kept in the index (every value decoded from its stored bytes, or read through h5py); and, on
# a local path only, with even the types only HDF5 converts (strings, references) left out.
MODES = {
    "indexed": {},
    "raw": {"inline_limit": 0},
    "h5py-types": {"inline_limit": 0, "inline_objects": 0},
}


@pytest.fixture(params=list(MODES))
def opened(request, case_file, where, tmp_path_factory, monkeypatch):
    """(our File, h5py's File) of the case file. The index is built by the first test of each
    combination and read from the cache by the others."""
    libver, path, url, options = case_file
    mode = MODES[request.param]
    if where == "s3" and "inline_objects" in mode:
        pytest.skip("the local path covers reading these types through h5py")
    if "inline_limit" in mode:
        build = functools.partial(indexer_module.build_index, inline_limit=mode["inline_limit"])
        monkeypatch.setattr(indexer_module, "build_index", build)
    if "inline_objects" in mode:
        monkeypatch.setattr(indexer_module, "INLINE_OBJECT_LIMIT", mode["inline_objects"])
    cache = tmp_path_factory.getbasetemp() / f"conformance-cache-{libver}-{where}-{request.param}"
    if where == "local":
        ours = open_hdf5(path, cache_dir=cache)
    else:
        ours = open_hdf5(url, storage_options=options, cache_dir=cache)
    with h5py.File(path, "r") as theirs:
        yield ours, theirs


def test_the_cases_have_the_superblock_version_their_bound_gives(case_file):
    libver, path, _, _ = case_file
    assert path.read_bytes()[8] == SUPERBLOCK_VERSIONS[libver]


def test_every_dataset_and_random_selections_equal_h5py(opened):
    ours, theirs = opened
    rng = np.random.default_rng(5)
    refused, wrong = set(), []
    for path in dataset_paths(theirs):
        mine, reference = ours[path], theirs[path]
        assert (mine.shape, mine.dtype, mine.chunks, mine.maxshape) == (
            reference.shape,
            reference.dtype,
            reference.chunks,
            reference.maxshape,
        ), path
        if reference.shape is None:
            assert mine[()] is None
            continue
        for selection in random_selections(reference.shape, rng, 5):
            try:
                got = mine[selection]
            except (NotImplementedError, OSError) as error:
                feature = REFUSED.get(path)
                if feature is None or feature not in str(error):
                    wrong.append(f"{path}{selection}: {error!r}")
                refused.add(path)
                break
            try:
                assert_same(got, reference[selection], theirs, f"{path}{selection}")
            except AssertionError as error:
                wrong.append(str(error))
    assert wrong == []
    assert refused == set(REFUSED)


def test_every_group_lists_its_links_in_h5pys_order(opened):
    ours, theirs = opened
    groups = ["/"]
    theirs.visititems(lambda name, item: groups.append(name) if isinstance(item, h5py.Group)
                      else None)  # fmt: skip
    for name in groups:
        assert list(ours[name]) == list(theirs[name]), name
        for link_name in theirs[name]:
            link = theirs[name].get(link_name, getlink=True)
            kind = {h5py.SoftLink: "soft", h5py.ExternalLink: "external"}.get(type(link), "hard")
            if kind == "hard" and isinstance(theirs[name][link_name], h5py.Datatype):
                kind = "datatype"
            assert ours[name].get_link(link_name).kind == kind


def test_links_lead_where_h5pys_do(opened):
    ours, theirs = opened
    for name in ("links/soft", "links/soft_relative", "links/hard", "links/chain",
                 "links/root/layouts/compact", "links/root/links/root/links/soft"):  # fmt: skip
        assert ours[name].name == theirs[name].name or np.array_equal(
            ours[name][()], theirs[name][()]
        )
        assert_same(ours[name][()], theirs[name][()], theirs, name)
    assert sorted(ours["links/soft_to_group"]) == sorted(theirs["links/soft_to_group"])
    with pytest.raises(KeyError, match="dangling"):
        ours["links/dangling"]
    for name in ("links/loop_a", "links/loop_b/x"):  # a soft-link cycle: an error, no hang
        with pytest.raises((KeyError, RuntimeError)):
            theirs[name]
        with pytest.raises(KeyError, match="soft link cycle"):
            ours[name]
    with pytest.raises(KeyError):  # as in h5py: HDF5 paths have no ".."
        ours["links/soft_up"]
    assert "odd/named_type" in ours
    with pytest.raises(NamedDatatypeError, match="named datatype"):
        ours["odd/named_type"]
    for name in ("links/external", "links/soft_to_external"):
        with pytest.raises(ExternalLinkError, match="other.h5"):
            ours[name]
    assert "links/external" in ours
    assert "links/dangling" not in ours


def test_every_attribute_equals_h5pys(opened):
    ours, theirs = opened
    items = [("/", theirs)]
    theirs.visititems(lambda name, item: items.append((name, item)))
    for name, item in items:
        if isinstance(item, h5py.Datatype):  # named datatypes are listed, not opened
            continue
        mine = ours[name].attrs
        assert list(mine) == list(item.attrs), name
        for attribute in item.attrs:
            assert_same(mine[attribute], attribute_value(item.attrs[attribute]), theirs,
                        f"{name}@{attribute}")  # fmt: skip


def test_chunk_indexes_are_the_ones_the_bound_gives(case_file):
    """The builder does make the newer chunk indexes where it says (else the suite would not
    cover them): HDF5 writes layout message version 4 for them, version 3 for v1 B-trees."""
    libver, path, _, _ = case_file
    with h5py.File(path) as f:
        for name in ("fixed_array", "extensible_array", "btree_v2", "single_chunk", "implicit"):
            version = _layout_version(f[f"indexes/{name}"])
            assert version == (4 if libver in NEW_CHUNK_INDEXES else 3), name


def _layout_version(dataset: h5py.Dataset) -> int:
    """The version of the dataset's layout message, from its object header's raw bytes."""
    from s3ecephys.hdf5.btree import DEFAULT_SIZES
    from s3ecephys.hdf5.object_header import parse_object_header

    address = h5py.h5o.get_info(dataset.id).addr
    with open(dataset.file.filename, "rb") as handle:
        handle.seek(address)
        header = handle.read(4096)
    hints = parse_object_header(header, 1 << 40, DEFAULT_SIZES)
    return 3 if hints.chunk_tree is not None else 4


def test_a_file_read_without_the_index_cache_is_the_same(case_file, tmp_path):
    """Reading every dataset whole through a fresh index and through a cached one agree."""
    _, path, _, _ = case_file
    first = open_hdf5(path, cache_dir=tmp_path)
    second = open_hdf5(path, cache_dir=tmp_path)
    assert second.store.stats.requests == 0  # the cached index
    with h5py.File(path) as theirs:
        for name in dataset_paths(theirs):
            if name in REFUSED or theirs[name].shape is None:
                continue
            assert_same(second[name][()], first[name][()], theirs, name)


def test_unreadable_datasets_name_why(case_file, tmp_path):
    _, path, _, _ = case_file
    with pytest.raises(UnreadableDatasetError, match="virtual"):
        open_hdf5(path, cache_dir=tmp_path)["virtual_elsewhere"][:]


def test_every_dataset_as_a_dask_array_equals_h5py(case_file, tmp_path):
    """Dask blocks (each with only its rows of the chunk table, assembled in either memory
    order) give the dataset's values; blocks of a few elements cut across chunks."""
    _, path, _, _ = case_file
    build = functools.partial(indexer_module.build_index, inline_limit=0)
    store = RangeStore(path)
    ours = File(store, build(store))
    with h5py.File(path) as theirs:
        for name in dataset_paths(theirs):
            reference = theirs[name]
            if name in REFUSED or not reference.shape or reference.dtype.kind == "O":
                continue
            blocks = tuple(max(1, n // 3) for n in reference.shape)
            if reference.dtype.shape:
                with pytest.raises(NotImplementedError, match="array element type"):
                    ours[name].to_dask(chunks=blocks)
                continue
            with dask.config.set(scheduler="threads"):
                values = ours[name].to_dask(chunks=blocks).compute()
            assert_same(values, reference[()], theirs, name)


@pytest.mark.parametrize("damage", ["cut in half", "not hdf5", "empty"])
def test_a_file_that_is_not_a_whole_hdf5_file_is_named_in_the_error(case_file, tmp_path, damage):
    _, path, _, _ = case_file
    content = {
        "cut in half": path.read_bytes()[: path.stat().st_size // 2],
        "not hdf5": b"<html>Access denied</html>" * 100,
        "empty": b"",
    }[damage]
    broken = tmp_path / "broken.h5"
    broken.write_bytes(content)
    with pytest.raises(OSError, match="broken.h5"):
        open_hdf5(broken, cache_dir=tmp_path / "cache")
