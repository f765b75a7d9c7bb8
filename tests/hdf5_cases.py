"""HDF5 files with every feature real files use, written by h5py, and comparisons with h5py.

The conformance tests (``tests/test_conformance_*.py``) read these files through
``s3ecephys.open_hdf5`` and check every value against what h5py reads from the same file: equal,
or a clear error that names the feature. One file per library-version bound, so that each
superblock version and each chunk index HDF5 writes is covered.
"""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from s3ecephys.hdf5 import Reference

# libver -> the superblock version HDF5 writes with that lower bound.
SUPERBLOCK_VERSIONS = {"earliest": 0, "v108": 2, "v110": 3, "latest": 3}
# Files written with these bounds index chunks in the newer structures (layout message v4).
NEW_CHUNK_INDEXES = ("v110", "latest")

NUMERIC_TYPES = ["i1", "<i2", ">i2", "<i4", ">i4", "<i8", ">i8", "u1", "<u2", ">u4", ">u8",
                 "<f2", "<f4", ">f4", "<f8", ">f8", "<c8", ">c16"]  # fmt: skip
ENUM = h5py.enum_dtype({"red": 0, "green": 1, "blue": 7}, basetype="i1")
BIG_ENUM = h5py.enum_dtype({"low": 0, "high": 60000}, basetype=">u2")
COMPOUND = np.dtype([("start", "<f8"), ("count", ">i4"), ("flag", "u1"), ("pair", "<i2", (2,))])
NESTED = np.dtype([("inner", COMPOUND), ("weight", ">f4")])
ARRAY = np.dtype(("<i4", (2, 3)))
UTF8_FIXED = h5py.string_dtype("utf-8", 12)
ASCII_VLEN = h5py.string_dtype("ascii")
UTF8_VLEN = h5py.string_dtype("utf-8")
VLEN_INTS = h5py.vlen_dtype(np.dtype("<i4"))
WORDS = ["CA1", "", "VISp", "ünïcode ✓", "a much longer string than the rest", "x"]


def _dcpl(layout: int | None = None, early: bool = False, nbit: bool = False) -> Any:
    plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    if layout is not None:
        plist.set_layout(layout)
    if early:
        plist.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    if nbit:
        plist.set_filter(h5py.h5z.FILTER_NBIT)
    return plist


def values_of(dtype: Any, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Deterministic, varied values of ``dtype`` (every byte matters: no runs of zeros)."""
    dtype = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        native = dtype.newbyteorder("=")
        return rng.integers(info.min, info.max, size=shape, dtype=native, endpoint=True).astype(
            dtype
        )
    if dtype.kind == "f":
        values = (rng.normal(size=shape) * 1000).astype(dtype)
        if count > 3:
            values.flat[1], values.flat[2] = np.nan, -np.inf
        return values
    if dtype.kind == "c":
        return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) > 0.5
    if dtype.fields is not None:
        values = np.zeros(shape, dtype=dtype)
        for name in dtype.names:
            values[name] = values_of(dtype.fields[name][0], shape, rng)
        return values
    if dtype.subdtype is not None:
        base, inner = dtype.subdtype
        return values_of(base, shape + inner, rng)
    raise TypeError(dtype)


def write_case_file(path: Path, libver: str, *, external: str = "other.h5") -> None:
    """One file with all the cases (see the module's description), written with ``libver``."""
    rng = np.random.default_rng(sum(map(ord, libver)))
    other = path.parent / external
    with h5py.File(other, "w") as f:
        f["target"] = np.arange(10)
    with h5py.File(path, "w", libver=libver) as f:
        _layouts(f.create_group("layouts"), rng)
        _chunk_indexes(f.create_group("indexes"), rng)
        _filters(f.create_group("filters"), rng)
        _types(f.create_group("types"), rng)
        _odd_types(f.create_group("odd"))
        _spaces(f.create_group("spaces"))
        _attributes(f.create_group("attributes"), f, rng)
        _groups(f, rng)
        _links(f, external)
        _virtual(f, external)


def _layouts(g: h5py.Group, rng: np.random.Generator) -> None:
    g.create_dataset("contiguous", data=values_of("<f8", (300, 11), rng))
    g.create_dataset("contiguous_unwritten", shape=(40,), dtype=">i2", fillvalue=-7)
    g.create_dataset("compact", data=values_of("<i4", (5, 20), rng), dcpl=_dcpl(h5py.h5d.COMPACT))
    g.create_dataset("chunked", data=values_of(">f4", (70, 9, 5), rng), chunks=(8, 4, 2))
    # Many chunks: a chunk B-tree of several levels under the earliest format.
    g.create_dataset("many_chunks", data=values_of("<i2", (4000, 3), rng), chunks=(7, 1))
    sparse = g.create_dataset(
        "sparse_fill", shape=(60, 40), chunks=(10, 10), dtype="<f4", fillvalue=-1.5,
        compression="gzip",
    )  # fmt: skip
    sparse[12:18, 5:25] = 7.25
    g.create_dataset("unwritten_chunked", shape=(20, 3), chunks=(5, 3), dtype=">u4", fillvalue=3)
    fill = np.array((1.5, -2, 3, (4, 5)), dtype=COMPOUND)
    records = g.create_dataset("compound_fill", shape=(30,), chunks=(4,), dtype=COMPOUND,
                               fillvalue=fill, compression="gzip")  # fmt: skip
    records[9:13] = values_of(COMPOUND, (4,), rng)
    g.create_dataset("enum_fill", shape=(12,), chunks=(5,), dtype=BIG_ENUM,
                     fillvalue=np.array(60000, ">u2"))[:3] = 0  # fmt: skip
    g.create_dataset("array_fill", shape=(7,), chunks=(2,), dtype=ARRAY)[1] = np.ones((2, 3))
    edge = g.create_dataset("edge_chunks", shape=(23, 17), chunks=(5, 4), dtype="<i8")
    edge[...] = values_of("<i8", (23, 17), rng)


def _chunk_indexes(g: h5py.Group, rng: np.random.Generator) -> None:
    """Under the v110/latest bounds, each of these uses the index its name says; under older
    bounds all of them use a version-1 B-tree."""
    data = values_of("<f4", (50, 12), rng)
    g.create_dataset("fixed_array", data=data, chunks=(8, 5), compression="gzip")
    g.create_dataset("fixed_array_paged", data=values_of("<i2", (3000,), rng), chunks=(2,))
    g.create_dataset("extensible_array", data=data, chunks=(8, 5), maxshape=(None, 12))
    growing = g.create_dataset("extensible_array_grown", shape=(0,), maxshape=(None,),
                               chunks=(3,), dtype="<i4", fillvalue=11)  # fmt: skip
    growing.resize((1000,))
    growing[100:400] = np.arange(300)
    g.create_dataset("btree_v2", data=data, chunks=(8, 5), maxshape=(None, None))
    g.create_dataset("single_chunk", data=data, chunks=data.shape, compression="gzip")
    g.create_dataset("single_chunk_filtered", data=data, chunks=data.shape, shuffle=True,
                     fletcher32=True)  # fmt: skip
    g.create_dataset("implicit", data=data, chunks=(8, 5), dcpl=_dcpl(early=True))


def _filters(g: h5py.Group, rng: np.random.Generator) -> None:
    ints = values_of("<i4", (400, 6), rng) // 1000
    floats = values_of("<f8", (400, 6), rng)
    g.create_dataset("gzip", data=floats, chunks=(64, 3), compression="gzip", compression_opts=9)
    g.create_dataset("shuffle", data=ints, chunks=(64, 3), shuffle=True)
    g.create_dataset("fletcher32", data=floats, chunks=(64, 3), fletcher32=True)
    g.create_dataset("gzip_shuffle_fletcher32", data=ints.astype(">i8"), chunks=(50, 6),
                     compression="gzip", shuffle=True, fletcher32=True)  # fmt: skip
    g.create_dataset("lzf", data=floats, chunks=(64, 3), compression="lzf")
    g.create_dataset("scaleoffset_int", data=ints, chunks=(64, 3), scaleoffset=0)
    g.create_dataset("scaleoffset_float", data=floats, chunks=(64, 3), scaleoffset=3)
    g.create_dataset("nbit", data=ints, chunks=(64, 3), dcpl=_dcpl(nbit=True))
    partial = g.create_dataset("gzip_partial", shape=(100, 4), chunks=(16, 4), dtype="<f4",
                               compression="gzip", fillvalue=2.5)  # fmt: skip
    partial[20:50] = 1.0


def _types(g: h5py.Group, rng: np.random.Generator) -> None:
    for name in NUMERIC_TYPES:
        g.create_dataset(f"numeric_{name}", data=values_of(name, (90,), rng))
        g.create_dataset(f"chunked_{name}", data=values_of(name, (90, 2), rng), chunks=(16, 1),
                         compression="gzip", shuffle=True)  # fmt: skip
    g.create_dataset("bool", data=values_of("?", (100,), rng), chunks=(30,))
    g.create_dataset("enum", data=rng.choice([0, 1, 7], 100).astype("i1"), dtype=ENUM)
    g.create_dataset("enum_big_endian", data=rng.choice([0, 60000], 50).astype(">u2"),
                     dtype=BIG_ENUM, chunks=(8,))  # fmt: skip
    g.create_dataset("compound", data=values_of(COMPOUND, (60,), rng), chunks=(16,),
                     compression="gzip")  # fmt: skip
    g.create_dataset("compound_nested", data=values_of(NESTED, (30,), rng))
    g.create_dataset("array", shape=(25,), dtype=ARRAY, chunks=(4,))[...] = values_of(
        ARRAY, (25,), rng
    )
    g.create_dataset("fixed_ascii", data=np.array([w.encode("ascii", "replace") for w in WORDS],
                                                  dtype="S12"))  # fmt: skip
    g.create_dataset("fixed_utf8", data=np.array([w.encode()[:12] for w in WORDS[:3]],
                                                 dtype=UTF8_FIXED))  # fmt: skip
    g.create_dataset("vlen_ascii", data=np.array([w.encode("ascii", "replace") for w in WORDS],
                                                 dtype=object), dtype=ASCII_VLEN)  # fmt: skip
    g.create_dataset("vlen_utf8", data=np.array(WORDS * 5, dtype=object), dtype=UTF8_VLEN,
                     chunks=(7,), compression="gzip")  # fmt: skip
    ragged = np.empty(4, dtype=object)
    ragged[:] = [np.arange(n, dtype="<i4") for n in (0, 3, 1, 5)]
    g.create_dataset("vlen_ints", data=ragged, dtype=VLEN_INTS)
    mixed = np.dtype([("name", UTF8_VLEN), ("value", "<f4")])
    g.create_dataset("compound_with_string", data=np.array([("a", 1.0), ("bé", 2.5)], mixed))
    target = g["numeric_<f4"]
    refs = g.create_dataset("object_refs", shape=(4,), dtype=h5py.ref_dtype)
    refs[0], refs[2], refs[3] = target.ref, g.ref, g.file["layouts/contiguous"].ref
    regions = g.create_dataset("region_refs", shape=(2,), dtype=h5py.regionref_dtype)
    regions[0] = g["numeric_<i4"].regionref[10:20]
    ragged_refs = g.create_dataset("vlen_refs", shape=(3,), dtype=h5py.vlen_dtype(h5py.ref_dtype))
    ragged_refs[0] = np.array([g.ref, target.ref], dtype=h5py.ref_dtype)
    ragged_refs[2] = np.array([target.ref], dtype=h5py.ref_dtype)
    with_ref = np.dtype([("index", "<i4"), ("target", h5py.ref_dtype)])
    rows = g.create_dataset("compound_with_ref", shape=(2,), dtype=with_ref)
    rows[0] = (1, target.ref)
    rows[1] = (2, g.ref)


def _odd_types(g: h5py.Group) -> None:
    """Types and settings other tools write, through h5py's low-level API."""
    space = h5py.h5s.create_simple((10,))

    def low_level(name: str, file_type: Any, values: np.ndarray) -> None:
        dataset = h5py.h5d.create(g.id, name.encode(), file_type, space)
        dataset.write(h5py.h5s.ALL, h5py.h5s.ALL, values)

    low_level("bitfield", h5py.h5t.STD_B16LE.copy(), np.arange(10, dtype="<u2") * 999)
    packed = h5py.h5t.STD_I32LE.copy()  # 20 significant bits, 4 bits up: HDF5 converts
    packed.set_precision(20)
    packed.set_offset(4)
    low_level("int_20_bits", packed, np.arange(10, dtype="<i4") * 16 - 50)
    padded = h5py.h5t.C_S1.copy()  # space-padded, as Fortran writes strings
    padded.set_size(6)
    padded.set_strpad(h5py.h5t.STR_SPACEPAD)
    low_level("space_padded", padded, np.array([b"ab", b"", b"abcdef"] * 3 + [b"x"], "S6"))
    g.create_dataset("opaque", data=np.frombuffer(bytes(range(80)), dtype="V8"), chunks=(3,))
    gaps = np.dtype({"names": ["a", "b"], "formats": ["<i2", ">f8"], "offsets": [0, 8],
                     "itemsize": 24})  # fmt: skip
    g.create_dataset("compound_with_gaps", data=np.ones(7, dtype=gaps), chunks=(2,))
    never = h5py.h5p.create(h5py.h5p.DATASET_CREATE)  # never-written chunks: not filled
    never.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    g.create_dataset("fill_time_never", shape=(20,), chunks=(4,), dtype="<i4", fillvalue=7,
                     dcpl=never)[0:4] = 1  # fmt: skip
    g.create_dataset("default_fill", shape=(9,), dtype=">f4")
    g.create_dataset("unicode name ü", data=np.arange(3))
    g["named_type"] = np.dtype([("x", "<i2"), ("y", ">f8")])  # a committed datatype
    g.create_dataset("of_named_type", shape=(4,), dtype=g["named_type"])[...] = np.ones(4, g[
        "named_type"].dtype)  # fmt: skip


def _spaces(g: h5py.Group) -> None:
    g.create_dataset("scalar", data=np.float64(3.25))
    g.create_dataset("scalar_string", data="one value", dtype=UTF8_VLEN)
    g.create_dataset("scalar_compound", data=np.zeros((), COMPOUND))
    g.create_dataset("empty_1d", shape=(0,), dtype="<f4")
    g.create_dataset("empty_2d_chunked", shape=(0, 4), maxshape=(None, 4), chunks=(8, 4),
                     dtype=">i2")  # fmt: skip
    g.create_dataset("null", data=h5py.Empty("<f4"))


def _attributes(g: h5py.Group, f: h5py.File, rng: np.random.Generator) -> None:
    """Attributes of every type and dataspace, on a group; and many (dense storage)."""
    a = g.attrs
    for name in NUMERIC_TYPES:
        a[f"numeric_{name}"] = values_of(name, (3,), rng)
        a[f"scalar_{name}"] = values_of(name, (), rng)
    a["bool"] = np.array([True, False, True])
    a.create("enum", data=np.array([0, 7], "i1"), dtype=ENUM)
    a["compound"] = values_of(COMPOUND, (2,), rng)
    a.create("array", data=values_of(ARRAY, (2,), rng), shape=(2, 2, 3), dtype=ARRAY)
    a["fixed_ascii"] = np.bytes_(b"fixed")
    a["fixed_ascii_array"] = np.array([b"ab", b"cde"], dtype="S3")
    a.create("fixed_utf8", data=np.array("grüß".encode(), dtype=UTF8_FIXED), dtype=UTF8_FIXED)
    a["vlen_utf8"] = "ünïcode"
    a.create("vlen_ascii", data=b"plain", dtype=ASCII_VLEN)
    a["vlen_utf8_array"] = np.array(WORDS, dtype=UTF8_VLEN)
    a["object_ref"] = f["layouts/contiguous"].ref
    a.create("object_refs", data=np.array([f["layouts"].ref, h5py.Reference()], dtype=object),
             dtype=h5py.ref_dtype)  # fmt: skip
    a["empty_array"] = np.zeros((0,), "<i4")
    a["null"] = h5py.Empty("f8")
    a["matrix"] = values_of(">f8", (2, 3), rng)
    a["region_ref"] = f["layouts/contiguous"].regionref[1:3, 2:5]
    a["unicode name ✓"] = np.int8(-3)
    dense = g.create_group("dense", track_order=True)
    for number in range(40):  # past 8 attributes, new-style headers keep them in a fractal heap
        dense.attrs[f"attribute_{(number * 7) % 40:02d}"] = np.int64(number)
    dense.attrs["long_text"] = "x" * 70_000  # larger than a header message can hold
    time = g.create_dataset("time", data=np.arange(3.0))  # dimension scales, as netCDF-4 writes
    time.make_scale("time")
    scaled = g.create_dataset("scaled", data=np.zeros((3, 2)))
    scaled.dims[0].attach_scale(time)
    dataset = g.create_dataset("with_attributes", data=np.arange(3))
    for number in range(30):  # dense attribute storage on a dataset too
        dataset.attrs[f"a{number}"] = np.arange(number)
    dataset.attrs["unit"] = "volts"
    dataset.attrs["scale"] = np.float32(0.5)
    dataset.attrs.create("refs", data=np.array([f["layouts"].ref], dtype=object),
                         dtype=h5py.ref_dtype)  # fmt: skip


def _groups(f: h5py.File, rng: np.random.Generator) -> None:
    """Groups whose links are kept in creation order (compact: few links; dense: many)."""
    names = ["zeta", "alpha", "mid", "beta"]
    compact = f.create_group("compact_ordered", track_order=True)
    for number, name in enumerate(names):
        compact[name] = np.arange(number + 1)
    dense = f.create_group("dense_ordered", track_order=True)
    for number in range(30):
        dense.create_group(f"member_{(number * 11) % 30:02d}")
    dense["data"] = values_of("<f4", (5,), rng)
    plain = f.create_group("many_links")
    for number in range(40):
        plain[f"d{number}"] = np.int32(number)


def _links(f: h5py.File, external: str) -> None:
    links = f.create_group("links")
    links["soft"] = h5py.SoftLink("/layouts/chunked")
    links["soft_relative"] = h5py.SoftLink("hard")  # relative to its group
    links["soft_up"] = h5py.SoftLink("../layouts/contiguous")  # HDF5 has no "..": dangling
    links["soft_to_group"] = h5py.SoftLink("/layouts")
    links["dangling"] = h5py.SoftLink("/nowhere")
    links["hard"] = f["layouts/many_chunks"]
    links["external"] = h5py.ExternalLink(external, "/target")
    links["chain"] = h5py.SoftLink("/links/soft")  # a soft link to a soft link
    links["loop_a"] = h5py.SoftLink("/links/loop_b")
    links["loop_b"] = h5py.SoftLink("/links/loop_a")
    links["root"] = f["/"]  # a hard link back up: a cycle
    links["soft_to_external"] = h5py.SoftLink("/links/external")


def _virtual(f: h5py.File, external: str) -> None:
    layout = h5py.VirtualLayout(shape=(2, 50), dtype="<f4")
    layout[0] = h5py.VirtualSource(f["indexes/fixed_array"])[:50, 0]
    layout[1] = h5py.VirtualSource(f["indexes/fixed_array"])[:50, 1]
    f.create_virtual_dataset("virtual", layout, fillvalue=-1)
    elsewhere = h5py.VirtualLayout(shape=(10,), dtype="<i8")
    elsewhere[:] = h5py.VirtualSource(external, "target", shape=(10,))
    f.create_virtual_dataset("virtual_elsewhere", elsewhere, fillvalue=-1)


# -- what the cases are, and comparing with h5py ---------------------------------------------------


def dataset_paths(h5: h5py.File) -> list[str]:
    """Every dataset reachable by hard links, by path."""
    found: list[str] = []
    h5.visititems(lambda name, item: found.append(name) if isinstance(item, h5py.Dataset) else None)
    return found


def random_selections(shape: tuple[int, ...], rng: np.random.Generator, count: int) -> list:
    """``count`` random h5py-style selections of an array of ``shape``."""
    chosen: list[Any] = [(), Ellipsis]
    while len(chosen) < count:
        items: list[Any] = []
        used_list = False
        for length in shape:
            kind = rng.choice(["int", "slice", "list"] if not used_list else ["int", "slice"])
            if length == 0 or kind == "slice":
                start, stop = sorted(rng.integers(-length - 1, length + 2, size=2).tolist())
                step = int(rng.integers(1, max(2, length // 2 + 1)))
                items.append(slice(start, stop, step))
            elif kind == "int":
                items.append(int(rng.integers(-length, length)))
            else:
                used_list = True
                size = int(rng.integers(1, min(length, 6) + 1))
                items.append(sorted(rng.choice(length, size=size, replace=False).tolist()))
        chosen.append(tuple(items))
    return chosen


def h5py_value(h5: h5py.File, value: Any) -> Any:
    """What h5py read, in the form this engine gives it: references as :class:`Reference`
    (the path of their target), empty dataspaces as None."""
    if isinstance(value, h5py.Empty):
        return None
    if isinstance(value, h5py.Reference):  # region references too: the object they point into
        return Reference(h5[value].name if value else None)
    if isinstance(value, np.ndarray) and value.dtype.kind == "O":
        if not any(isinstance(item, h5py.Reference) for item in value.flat):
            return value  # strings, or ragged arrays (compared item by item)
        converted = np.empty(value.shape, dtype=object)
        for position, item in np.ndenumerate(value):
            converted[position] = h5py_value(h5, item)
        return converted
    return value  # records are compared field by field


def assert_same(ours: Any, theirs: Any, h5: h5py.File, where: str) -> None:
    """``ours`` (from s3ecephys) equals ``theirs`` (from h5py): same type, dtype and values."""
    theirs = h5py_value(h5, theirs)
    if theirs is None or isinstance(theirs, Reference):
        assert ours == theirs, where
        return
    if isinstance(theirs, bytes | str):
        assert type(ours) is type(theirs) and ours == theirs, where
        return
    ours_array, theirs_array = np.asarray(ours), np.asarray(theirs)
    assert ours_array.shape == theirs_array.shape, where
    assert np.ndim(ours) == np.ndim(theirs) and isinstance(ours, np.ndarray) == isinstance(
        theirs, np.ndarray
    ), f"{where}: {type(ours)} vs {type(theirs)}"
    if theirs_array.dtype.names:
        assert ours_array.dtype.names == theirs_array.dtype.names, where
        for name in theirs_array.dtype.names:
            assert_same(ours_array[name], theirs_array[name], h5, f"{where}[{name!r}]")
        return
    if theirs_array.dtype.kind == "O":
        assert ours_array.dtype.kind == "O", where
        for position, item in np.ndenumerate(theirs_array):
            mine = ours_array[position]
            if isinstance(item, np.ndarray):
                assert_same(mine, item, h5, f"{where}{position}")
            else:
                assert type(mine) is type(h5py_value(h5, item)), f"{where}{position}"
                assert mine == h5py_value(h5, item), f"{where}{position}"
        return
    assert ours_array.dtype == theirs_array.dtype, f"{where}: {ours_array.dtype}"
    assert ours_array.dtype.metadata == theirs_array.dtype.metadata or not (
        theirs_array.dtype.metadata
    ), where
    nan = theirs_array.dtype.kind in "fc"
    assert np.array_equal(ours_array, theirs_array, equal_nan=nan), where


def attribute_value(value: Any) -> Any:
    """An h5py attribute value as this engine gives it: strings as ``str`` whatever their
    storage (string arrays as object arrays of ``str``)."""
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode("utf-8")
    if isinstance(value, np.ndarray) and (
        value.dtype.kind == "S"
        or (value.dtype.kind == "O" and h5py.check_string_dtype(value.dtype) is not None)
    ):
        text = np.empty(value.shape, dtype=object)
        for position, item in np.ndenumerate(value):
            text[position] = item.decode() if isinstance(item, bytes) else item
        return text
    return value


def is_number(value: Any) -> bool:
    return isinstance(value, numbers.Number)
