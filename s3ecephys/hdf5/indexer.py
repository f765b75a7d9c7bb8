"""Building a :class:`FileIndex` in one pass over an HDF5 file's metadata with h5py.

h5py walks the file through a :class:`MetadataFile`, which serves its many small reads from cached
blocks (the file's first and last MiB arrive in one wave) and fetches B-trees, object headers and
heaps a level at a time, ahead of h5py. Groups are visited breadth first, each object once (a
second hard link to it is recorded as a link), soft and external links are recorded, not
followed. Per dataset the layout comes from the low-level API (``get_offset``,
``get_storage_size``). A chunked dataset's table is read from its version-1 B-tree by
:mod:`s3ecephys.hdf5.chunk_btree` (all trees together) when the dataset's values go into the
index, and otherwise left for the first read of its data (only where the tree starts is kept);
chunks indexed in HDF5's newer structures are listed by ``chunk_iter``. Values that cannot be
decoded from raw bytes (strings, references, compact storage) and small datasets are read once
here and kept in the index, after concurrent prefetches of all their bytes, so that reopening
needs no request.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Sequence
from typing import Any

import h5py
import numpy as np

from s3ecephys.hdf5.chunk_btree import ChunkTreeError, read_chunk_tables
from s3ecephys.hdf5.codecs import UnsupportedFilterError, check_supported, decode_chunk
from s3ecephys.hdf5.dtypes import (
    describe_dtype,
    is_raw_decodable,
)
from s3ecephys.hdf5.index import (
    ChunkTable,
    ChunkTree,
    DatasetIndex,
    FileIndex,
    FilterInfo,
    GroupIndex,
    LinkInfo,
)
from s3ecephys.hdf5.index_values import IndexValues
from s3ecephys.hdf5.metadata_file import MetadataFile
from s3ecephys.hdf5.object_header import parse_continuation_block, parse_object_header
from s3ecephys.hdf5.values import Encoded, encode_value
from s3ecephys.storage.ranges import RangeStore

# Datasets up to this many bytes are stored in the index: reading them later costs nothing.
INLINE_LIMIT = 64 * 1024
# Datasets that only h5py can decode (strings, references) are stored in the index up to this
# many elements; beyond, reading them raises a clear error instead of bloating every index.
INLINE_OBJECT_LIMIT = 2_000_000
# A variable-length value as stored: its length, then its heap ID (the heap collection's address
# and the index in it), with the 8-byte addresses of nearly every file.
_HEAP_ID = np.dtype([("length", "<u4"), ("collection", "<u8"), ("index", "<u4")])
# HDF5's smallest (and usual) global heap collection.
_COLLECTION_BYTES = 4096
# Bytes of one dataset worth prefetching before reading it for the index.
_PREFETCH_LIMIT = 16 * 2**20
# Metadata blocks: past the file's head, HDF5's metadata items lie scattered, but a group's
# B-tree, symbol table node and local heap lie near its members' object headers (written
# together), so a block that takes them in with the header saves a wave per level of groups.
# Measured on the benchmark-size synthetic files (cold open, no chunk B-trees walked): LFP
# 16 KiB 4 round trips / 2.16 MB, 64 KiB 3 / 2.29 MB, 128 KiB 3 / 2.49 MB; session 16 KiB
# 17 / 7.00 MB, 64 KiB 14 / 6.49 MB, 128 KiB 13 / 7.86 MB.
_METADATA_BLOCK = 64 * 1024
# An object header's first block is read this far for its layout message (written first).
_HEADER_BYTES = 4096

_LAYOUTS = {
    h5py.h5d.CONTIGUOUS: "contiguous",
    h5py.h5d.CHUNKED: "chunked",
    h5py.h5d.COMPACT: "compact",
    h5py.h5d.VIRTUAL: "virtual",
}


def open_metadata(store: RangeStore) -> MetadataFile:
    """The file object an index is built through; opening it fetches the file's head and tail
    (and, on S3, learns the object's version from them when it is not known yet: no HEAD)."""
    return MetadataFile(store, block_size=_METADATA_BLOCK)


def build_index(
    store: RangeStore,
    *,
    handle: MetadataFile | None = None,
    inline_limit: int = INLINE_LIMIT,
) -> FileIndex:
    """Index the HDF5 file behind ``store``: structure, attributes, layouts, small values.

    ``handle`` is a file object from :func:`open_metadata` already opened on ``store`` (its
    fetches count in the cost recorded); one is opened if not given.
    """
    handle = handle if handle is not None else open_metadata(store)
    before = handle.stats_before
    info = store.info()  # known since the handle opened: no request
    with handle, _open_h5py(handle, store.url) as h5file:
        objects = _Walk(h5file, handle, inline_limit).run()
    cost = store.stats - before
    return FileIndex(
        url=store.url,
        size=info.size,
        etag=info.etag,
        mtime_ns=info.mtime_ns,
        objects=objects,
        build_requests=cost.requests,
        build_bytes=cost.bytes,
    )


class NotHDF5Error(OSError):
    """The object is not an HDF5 file h5py can open (another format, cut short, damaged)."""


def _open_h5py(handle: MetadataFile, url: str) -> h5py.File:
    try:
        return h5py.File(handle, "r")
    except OSError as error:  # h5py's message does not say which file
        raise NotHDF5Error(
            f"{url} ({handle.size} bytes) cannot be opened as an HDF5 file: {error}"
        ) from error


class _Walk:
    def __init__(self, h5file: h5py.File, handle: MetadataFile, inline_limit: int):
        self.file = h5file
        self.handle = handle
        self.inline_limit = inline_limit
        self.objects: dict[str, GroupIndex | DatasetIndex] = {}
        # Datasets whose values go into the index, read together at the end, with whether their
        # raw bytes could be decoded without h5py.
        self.to_inline: list[tuple[DatasetIndex, h5py.Dataset, bool]] = []
        # Chunked datasets whose chunk B-trees are read before their values.
        self.trees_to_read: list[DatasetIndex] = []
        # Object header address -> canonical path, to resolve object references.
        self.paths_by_address: dict[int, str] = {}
        self.index_values = IndexValues(h5file, self.paths_by_address)

    def run(self) -> dict[str, GroupIndex | DatasetIndex]:
        root = self.file["/"]
        self.paths_by_address[h5py.h5o.get_info(root.id).addr] = "/"
        # Objects are told apart by header address (get_info on a dataset would also walk its
        # whole chunk B-tree to sum metadata sizes: hundreds of reads for an LFP array).
        seen = self.paths_by_address
        queue: deque[tuple[str, h5py.Group]] = deque([("/", root)])
        while queue:
            path, group = queue.popleft()
            entry = GroupIndex(path, attrs=self.index_values.attributes(group))
            self.objects[path] = entry
            for name in group:
                child_path = f"{path.rstrip('/')}/{name}"
                link = group.get(name, getlink=True)
                if isinstance(link, h5py.SoftLink):
                    entry.links[name] = LinkInfo("soft", link.path)
                    continue
                if isinstance(link, h5py.ExternalLink):
                    entry.links[name] = LinkInfo("external", link.path, link.filename)
                    continue
                identity = group.id.links.get_info(name.encode()).u
                if identity in seen:
                    entry.links[name] = LinkInfo("hard", seen[identity])
                    continue
                child = group[name]
                if isinstance(child, h5py.Group):
                    queue.append((child_path, child))
                elif isinstance(child, h5py.Dataset):
                    self.objects[child_path] = self.dataset(child_path, child, identity)
                else:  # a named datatype: listed, nothing to read
                    entry.links[name] = LinkInfo("datatype", child_path)
                    continue
                seen[identity] = child_path
                entry.links[name] = LinkInfo("hard", child_path)
        self.read_chunk_trees()
        self.read_inline_values()
        return self.objects

    # -- datasets --------------------------------------------------------------------------------

    def dataset(self, path: str, dataset: h5py.Dataset, header: int) -> DatasetIndex:
        dsid = dataset.id
        plist = dsid.get_create_plist()
        description = describe_dtype(dataset.dtype)
        layout = _LAYOUTS.get(plist.get_layout(), "unknown")
        if layout == "contiguous" and plist.get_external_count() > 0:
            layout = "external"
        entry = DatasetIndex(
            path=path,
            dtype_description=description,
            shape=dataset.shape,
            maxshape=dataset.maxshape,
            layout=layout,
            attrs=self.index_values.attributes(dataset),
            filters=tuple(_filter_info(plist.get_filter(i)) for i in range(plist.get_nfilters())),
        )
        raw = (
            is_raw_decodable(description)
            and _matches_file_type(dsid, dataset.dtype)
            and layout in ("contiguous", "chunked")
        )
        if raw:
            entry.fill_value = _fill_value(dataset)
        count = 0 if dataset.shape is None else int(np.prod(dataset.shape, dtype=np.int64))
        if dataset.shape is None:
            inline = False
        elif raw:
            inline = count * dataset.dtype.itemsize <= self.inline_limit
        else:
            inline = count <= INLINE_OBJECT_LIMIT
        if layout == "contiguous":
            entry.offset = dsid.get_offset()
            entry.storage_size = dsid.get_storage_size()
        elif layout == "chunked":
            entry.chunks = dataset.chunks
            entry.chunk_tree = self.chunk_tree(header, dataset)
            if entry.chunk_tree is None:  # chunks indexed otherwise: h5py walks the index
                entry.set_chunk_table(_chunk_table(dataset))
            elif inline:  # its values are read now, so its table too (with the others')
                self.trees_to_read.append(entry)
            # else: left to be read when its data is first read.
        if dataset.shape is None:
            return entry
        entry.unreadable = _refusal(plist, layout)
        if entry.unreadable is not None:
            return entry
        if inline:
            self.to_inline.append((entry, dataset, raw))
        elif not raw:  # too large to keep in the index: read through h5py when asked for
            entry.hdf5_library_only = True
        return entry

    def chunk_tree(self, header: int, dataset: h5py.Dataset) -> ChunkTree | None:
        """Where the chunk B-tree of ``dataset`` (its object header at ``header``, just read by
        h5py) starts, when it is a version-1 B-tree whose layout message agrees with h5py on the
        chunk shape and element size (else None: h5py lists the chunks)."""
        if self.file.userblock_size:
            # Addresses inside the file count from its superblock, after the user block: the
            # header and tree parsers take them as file offsets, so h5py lists these chunks.
            return None
        size, sizes = self.handle.size, self.handle.sizes
        hints = parse_object_header(self.handle.peek(header, _HEADER_BYTES), size, sizes)
        for address, length, version in hints.continuations:
            block = self.handle.peek(address, length)
            hints.merge(parse_continuation_block(block, version, size, sizes))
        expected = (*dataset.chunks, dataset.id.get_type().get_size())
        if hints.chunk_tree is None or hints.chunk_dimensions != expected:
            return None
        return ChunkTree(hints.chunk_tree, sizes.offsets)

    def read_chunk_trees(self) -> None:
        """The chunk tables of the chunked datasets read now, all trees walked together."""
        if not self.trees_to_read:
            return

        def read(spans: Sequence[tuple[int, int]]) -> list[bytes]:
            self.handle.prefetch(list(spans))
            return [self.handle.peek(offset, length) for offset, length in spans]

        trees = [(entry.chunk_tree, entry.chunks) for entry in self.trees_to_read]
        try:
            tables = read_chunk_tables(read, trees, self.handle.size)
        except ChunkTreeError:  # h5py reads what this reader could not
            tables = [_chunk_table(self.file[entry.path]) for entry in self.trees_to_read]
        for entry, table in zip(self.trees_to_read, tables, strict=True):
            entry.set_chunk_table(table)

    def read_inline_values(self) -> None:
        # Everything these datasets occupy is fetched in a few concurrent waves (their storage,
        # then the heap collections their strings live in), so that h5py's reads then hit the
        # block cache instead of costing a round trip each.
        ranges = []
        for entry, _, _ in self.to_inline:
            ranges.extend(self.storage_ranges(entry))
        self.handle.prefetch(ranges)
        self.prefetch_heap_collections()
        for entry, dataset, raw in self.to_inline:
            try:
                values = self.index_values.values(dataset, entry.dtype_description)
            except Exception as error:
                # e.g. a filter h5py lacks: raw data is left to the reader, which names it.
                if not raw:
                    entry.unreadable = f"h5py could not read it: {error}"
                continue
            entry.inline = encode_value(values, entry.dtype_description)

    def storage_ranges(self, entry: DatasetIndex) -> list[tuple[int, int]]:
        if entry.storage_size > _PREFETCH_LIMIT:
            return []
        if entry.layout == "contiguous" and entry.offset is not None:
            return [(entry.offset, entry.storage_size)]
        if entry.layout == "chunked" and entry.chunk_table is not None:
            table = entry.chunk_table
            return list(zip(table.offsets.tolist(), table.sizes.tolist(), strict=True))
        return []

    def prefetch_heap_collections(self) -> None:
        """Fetch the global heap collections that hold the inlined datasets' variable-length
        values: their addresses are in the datasets' stored bytes (already fetched)."""
        addresses: set[int] = set()
        for entry, _, _ in self.to_inline:
            if entry.dtype_description["kind"] not in ("vlen_string", "vlen"):
                continue
            for data in self.stored_bytes(entry):
                heap_ids = np.frombuffer(data[: len(data) - len(data) % 16], dtype=_HEAP_ID)
                used = heap_ids[heap_ids["length"] > 0]["collection"]
                addresses.update(int(a) for a in np.unique(used) if 0 < a < self.handle.size)
        if not addresses:
            return
        self.handle.prefetch([(address, _COLLECTION_BYTES) for address in addresses])
        # Collections are 4 KiB unless a value did not fit: fetch the rest of the large ones.
        larger = []
        for address in addresses:
            header = self.handle.peek(address, 16)
            if header[:4] == b"GCOL":
                size = int.from_bytes(header[8:16], "little")
                if _COLLECTION_BYTES < size <= _PREFETCH_LIMIT:
                    larger.append((address, size))
        self.handle.prefetch(larger)

    def stored_bytes(self, entry: DatasetIndex) -> list[bytes]:
        """The dataset's stored bytes (chunks unfiltered) from the block cache; empty when they
        are not all there or cannot be unfiltered."""
        pieces = []
        for offset, size in self.storage_ranges(entry):
            data = self.handle.peek(offset, size)
            if len(data) < size:
                return []
            if entry.layout == "chunked":
                try:
                    check_supported(entry.filters, entry.path)
                    data = bytes(decode_chunk(data, entry.filters, 0, 16, path=entry.path))
                except (UnsupportedFilterError, ValueError, OSError):
                    return []
            pieces.append(data)
        return pieces


def _refusal(plist: h5py.h5p.PropDCID, layout: str) -> str | None:
    """Why a dataset's values are not read at all, or None: they lie outside the file, where
    h5py over the file's bytes would silently read fill values or whatever lies in the current
    folder under the same name."""
    if layout == "external":
        count = plist.get_external_count()
        names = sorted({plist.get_external(i)[0].decode() for i in range(count)})
        return (
            f"its values are stored in external raw files {names}, outside the HDF5 file; "
            "s3ecephys reads only what is inside the file (external storage is not supported)"
        )
    if layout == "virtual":
        names = {plist.get_virtual_filename(i) for i in range(plist.get_virtual_count())}
        if names != {"."}:
            return (
                f"a virtual dataset mapping data from other files {sorted(names - {'.'})}; "
                "s3ecephys does not follow virtual datasets into other files: open them instead"
            )
    return None


def _filter_info(raw: tuple[Any, ...]) -> FilterInfo:
    code, flags, values, name = raw
    text = name.decode("ascii", "replace") if isinstance(name, bytes) else str(name)
    return FilterInfo(int(code), text, int(flags), tuple(int(v) for v in values))


def chunk_tables_through_h5py(store: RangeStore, paths: Sequence[str]) -> list[ChunkTable]:
    """The chunk tables of the datasets at ``paths`` as h5py's ``chunk_iter`` lists them (for
    chunk B-trees :mod:`s3ecephys.hdf5.chunk_btree` could not read), in one pass over the file."""
    with open_metadata(store) as handle, h5py.File(handle, "r") as h5file:
        return [_chunk_table(h5file[path]) for path in paths]


def _chunk_table(dataset: h5py.Dataset) -> ChunkTable:
    dsid, chunks = dataset.id, np.array(dataset.chunks, dtype=np.int64)
    rows: list[tuple[tuple[int, ...], int, int, int]] = []
    if hasattr(dsid, "chunk_iter"):
        dsid.chunk_iter(
            lambda info: rows.append(
                (info.chunk_offset, info.byte_offset, info.size, info.filter_mask)
            )
        )
    else:  # h5py < 3.8 or HDF5 < 1.12.3: one call per chunk
        for number in range(dsid.get_num_chunks()):
            info = dsid.get_chunk_info(number)
            rows.append((info.chunk_offset, info.byte_offset, info.size, info.filter_mask))
    if not rows:
        return ChunkTable.empty(len(chunks))
    offsets = np.array([row[0] for row in rows], dtype=np.int64).reshape(len(rows), len(chunks))
    return ChunkTable(
        grid=offsets // chunks,
        offsets=np.array([row[1] for row in rows], dtype=np.int64),
        sizes=np.array([row[2] for row in rows], dtype=np.int64),
        filter_masks=np.array([row[3] for row in rows], dtype=np.int64),
    )


def _fill_value(dataset: h5py.Dataset) -> Encoded | None:
    if dataset.id.get_create_plist().get_fill_time() == h5py.h5d.FILL_TIME_NEVER:
        # HDF5 leaves never-written elements untouched, and h5py reads into zeros.
        return None
    try:
        value = dataset.fillvalue
    except Exception:  # no fill value defined for this type: zeros, as HDF5 gives
        return None
    # An array element type's fill value is one element: an array of the element's shape.
    dtype = dataset.dtype
    return encode_value(np.asarray(value, dtype=dtype.base).reshape(dtype.shape))


def _matches_file_type(dsid: h5py.h5d.DatasetID, dtype: np.dtype) -> bool:
    """Whether the bytes in the file are laid out exactly as ``dtype`` (no conversion)."""
    file_type = dsid.get_type()
    try:
        if file_type == h5py.h5t.py_create(dtype):
            return True
    except TypeError:
        return False
    # Integers and enums (bool included) written by other tools may differ in names or sign
    # details h5py ignores; the bytes are still the values when size and order agree.
    if dtype.kind not in "iub" or dtype.fields is not None:
        return False
    base = file_type.get_super() if isinstance(file_type, h5py.h5t.TypeEnumID) else file_type
    if not isinstance(base, h5py.h5t.TypeIntegerID) or base.get_size() != dtype.itemsize:
        return False
    # Fewer significant bits than bytes (n-bit style types, or a bit offset): HDF5 converts them.
    if base.get_precision() != 8 * dtype.itemsize or base.get_offset() != 0:
        return False
    big = dtype.byteorder == ">" or (dtype.byteorder == "=" and sys.byteorder == "big")
    order = h5py.h5t.ORDER_BE if big else h5py.h5t.ORDER_LE
    return dtype.itemsize == 1 or base.get_order() == order
