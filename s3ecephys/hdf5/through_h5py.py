"""Reading through h5py the datasets this engine does not decode itself.

The engine decodes numeric data stored raw, gzip'ed, shuffled or checksummed: what the Allen
files and nearly all NWB files use. Other filters HDF5 or h5py ship (lzf, scale-offset, n-bit,
szip where built), and large datasets of types only HDF5 converts (variable-length strings,
references, ragged arrays, virtual datasets whose sources are in the same file), are read by
h5py over a block-cached file object on the same store, one selection at a time. That costs
h5py's one-read-at-a-time round trips, but gives h5py's values instead of an error.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from s3ecephys.hdf5.codecs import SUPPORTED_FILTERS
from s3ecephys.hdf5.dtypes import describe_dtype, dtype_from_description
from s3ecephys.hdf5.index import DatasetIndex, FilterInfo
from s3ecephys.hdf5.reference import Reference
from s3ecephys.hdf5.selection import Selection
from s3ecephys.storage.blockfile import BlockFile
from s3ecephys.storage.ranges import RangeStore

# h5py reads metadata in small pieces and data a chunk at a time: blocks of 64 KiB serve both,
# and the cache is emptied past this many bytes (reading a large dataset through h5py must not
# keep it all in memory; HDF5 caches the metadata it needs again itself).
_CACHE_LIMIT = 16 * 2**20
# h5py files kept open, most recently used last (each holds its store and block cache); one
# dropped is closed by h5py once no read is using it.
_MAX_OPEN = 4
_open_files: OrderedDict[RangeStore, Any] = OrderedDict()
_opening = threading.Lock()


def filters_h5py_adds(filters: Sequence[FilterInfo]) -> bool:
    """Whether the pipeline has filters this engine lacks and all of them are in h5py's HDF5."""
    missing = [info for info in filters if info.id not in SUPPORTED_FILTERS]
    if not missing:
        return False
    import h5py

    return all(h5py.h5z.filter_avail(info.id) for info in missing)


def reads_through_h5py(dataset: DatasetIndex) -> bool:
    """Whether reading ``dataset``'s values (not held in the index) goes through h5py."""
    if dataset.inline is not None or dataset.unreadable is not None:
        return False
    return dataset.hdf5_library_only or filters_h5py_adds(dataset.filters)


def read_through_h5py(store: RangeStore, dataset: DatasetIndex, selection: Selection) -> Any:
    """The values of ``selection`` of ``dataset`` as h5py reads them (references as
    :class:`Reference`)."""
    if selection.size == 0:
        return selection.finish(np.empty(selection.counts, dtype=dataset.dtype))
    h5file = _h5py_file(store)
    target = h5file[dataset.path]
    # Selections are regular (ascending slices, one sorted index array): h5py takes them as they
    # are, and the reordering asked for is applied after.
    values = target[tuple(selection.axes)] if selection.axes else target[...]
    return selection.finish(_with_paths(h5file, np.asarray(values)))


def _h5py_file(store: RangeStore) -> Any:
    import h5py

    with _opening:
        h5file = _open_files.get(store)
        if h5file is None:
            h5file = h5py.File(_BoundedBlockFile(store, head_size=1 << 16, tail_size=1 << 16))
            _open_files[store] = h5file
            while len(_open_files) > _MAX_OPEN:
                _open_files.popitem(last=False)
        _open_files.move_to_end(store)
    return h5file


@atexit.register
def _close_open_files() -> None:
    # Closed while the interpreter is whole: left to the final garbage collection, h5py would
    # call back into file objects whose store and event loop are already torn down (a crash at
    # exit).
    with _opening:
        while _open_files:
            _, h5file = _open_files.popitem()
            with contextlib.suppress(Exception):
                h5file.close()


class _BoundedBlockFile(BlockFile):
    """A block file whose cache is emptied when it grows past ``_CACHE_LIMIT``."""

    def readinto(self, buffer: memoryview | bytearray) -> int:
        if len(self._blocks) * self.block_size > _CACHE_LIMIT:
            self._blocks.clear()
        return super().readinto(buffer)


def _with_paths(h5file: Any, values: np.ndarray) -> np.ndarray:
    """``values`` with h5py references (in arrays or record fields) as :class:`Reference`."""
    import h5py

    if values.dtype.names:
        if not any(_holds_references(values.dtype.fields[n][0]) for n in values.dtype.names):
            return values
        converted = np.empty(values.shape, dtype=_plain_dtype(values.dtype))
        for name in values.dtype.names:
            converted[name] = _with_paths(h5file, values[name])
        return converted
    if values.dtype.kind == "O" and h5py.check_vlen_dtype(values.dtype) in (
        h5py.Reference,
        h5py.RegionReference,
    ):  # ragged arrays of references
        ragged = np.empty(values.shape, dtype=object)
        for position, item in np.ndenumerate(values):
            ragged[position] = _with_paths(h5file, np.asarray(item, dtype=h5py.ref_dtype))
        return ragged
    if values.dtype.kind != "O" or h5py.check_ref_dtype(values.dtype) is None:
        return values
    paths = np.empty(values.shape, dtype=np.dtype("O", metadata={"ref": Reference}))
    for position, reference in np.ndenumerate(values):
        paths[position] = Reference(h5file[reference].name if reference else None)
    return paths


def _holds_references(dtype: np.dtype) -> bool:
    import h5py

    if dtype.names:
        return any(_holds_references(dtype.fields[name][0]) for name in dtype.names)
    return dtype.kind == "O" and h5py.check_ref_dtype(dtype) is not None


def _plain_dtype(dtype: np.dtype) -> np.dtype:
    """``dtype`` with reference fields typed as this engine types them."""
    return dtype_from_description(describe_dtype(dtype))
