"""What h5py reads of a file's attributes and small datasets, made fit for the index.

Strings become ``str`` whatever their storage (fixed-length ones arrive as bytes; bytes that are
not UTF-8 are taken as Latin-1), and references become :class:`Reference` s to the paths they
point at: object references in datasets are read as the header addresses they are and looked up
in the walk's table of paths (dereferencing each through h5py costs ~30 us a value), those in
attributes and in ragged or compound values through h5py.
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

from s3ecephys.hdf5.dtypes import Description, describe_dtype, dtype_from_description
from s3ecephys.hdf5.values import Encoded, Reference, encode_value


class IndexValues:
    """Reads values of one open file for its index (``paths_by_address``: object header address
    -> path, filled by the walk as it goes)."""

    def __init__(self, h5file: h5py.File, paths_by_address: dict[int, str]):
        self._file = h5file
        self._paths_by_address = paths_by_address

    def attributes(self, item: h5py.HLObject) -> dict[str, Encoded]:
        """The attributes of a group or dataset, encoded for the index; one h5py cannot read is
        kept as a note in its place, so that the file still opens."""
        encoded = {}
        for name in item.attrs:
            try:
                encoded[name] = self._attribute(item.attrs[name])
            except Exception as error:  # a type h5py cannot read, or this index cannot hold:
                # noted in its place, and the file still opens
                encoded[name] = encode_value(f"<unreadable attribute: {error}>")
        return encoded

    def values(self, dataset: h5py.Dataset, description: Description) -> np.ndarray:
        """All values of ``dataset`` (of type ``description``), references as :class:`Reference`."""
        if _has_references(description) and not _has_region_references(description):
            return self._reference_values(dataset, description)
        return self._plain(np.asarray(dataset[...]), description)

    def _attribute(self, value: Any) -> Encoded:
        # Strings become str whatever their storage (fixed-length ones arrive as bytes).
        if isinstance(value, h5py.Empty) or value is None:
            return encode_value(None)
        if isinstance(value, bytes | np.bytes_):
            return encode_value(_text(bytes(value)))
        if isinstance(value, h5py.Reference):
            return encode_value(self._reference(value))
        if isinstance(value, str):
            return encode_value(value)
        array = np.asarray(value)
        if array.dtype.kind == "S" or (
            array.dtype.kind == "O" and h5py.check_string_dtype(array.dtype) is not None
        ):
            text = np.empty(array.shape, dtype=object)
            for position, item in np.ndenumerate(array):
                text[position] = _text(item) if isinstance(item, bytes) else item
            return encode_value(text, {"kind": "vlen_string", "encoding": "utf-8"})
        description = describe_dtype(array.dtype)
        return encode_value(self._plain(array, description), description)

    def _plain(self, values: np.ndarray, description: Description) -> np.ndarray:
        """``values`` with h5py references replaced by :class:`Reference` (paths)."""
        kind = description["kind"]
        if kind == "reference":
            plain = np.empty(values.shape, dtype=dtype_from_description(description))
            for position, item in np.ndenumerate(values):
                plain[position] = self._reference(item)
            return plain
        if kind == "vlen" and _has_references(description["base"]):
            # Ragged arrays of references (netCDF-4's DIMENSION_LIST attributes).
            plain = np.empty(values.shape, dtype=object)
            for position, item in np.ndenumerate(values):
                plain[position] = self._plain(np.asarray(item), description["base"])
            return plain
        if kind == "compound" and _has_references(description):
            plain = np.empty(values.shape, dtype=dtype_from_description(description))
            for name, _, field in description["fields"]:
                plain[name] = self._plain(values[name], field)
            return plain
        return values

    def _reference(self, reference: Any) -> Reference:
        if not reference:
            return Reference(None)
        try:
            return Reference(self._file[reference].name)
        except (KeyError, ValueError, TypeError):
            return Reference(None)

    def _reference_values(self, dataset: h5py.Dataset, description: Description) -> np.ndarray:
        # Read object references as the 8-byte header addresses they are and look the paths
        # up in the walk's table: dereferencing each through h5py costs ~30 us a value.
        memory_type, raw_dtype = _address_types(description)
        raw = np.empty(dataset.shape, dtype=raw_dtype)
        if raw.size:
            dataset.id.read(h5py.h5s.ALL, h5py.h5s.ALL, raw, mtype=memory_type)
        return self._with_paths(raw, description)

    def _with_paths(self, raw: np.ndarray, description: Description) -> np.ndarray:
        kind = description["kind"]
        if kind == "reference":
            paths = np.empty(raw.shape, dtype=object)
            for position, address in np.ndenumerate(raw):
                paths[position] = Reference(self._paths_by_address.get(int(address)))
            return paths
        if kind == "compound":
            values = np.empty(raw.shape, dtype=dtype_from_description(description))
            for name, _, field in description["fields"]:
                values[name] = self._with_paths(raw[name], field)
            return values
        return raw


def _has_region_references(description: Description) -> bool:
    kind = description["kind"]
    if kind == "reference":
        return bool(description["region"])
    if kind == "compound":
        return any(_has_region_references(field) for _, _, field in description["fields"])
    return False


def _address_types(description: Description) -> tuple[h5py.h5t.TypeID, np.dtype]:
    """The HDF5 memory type that reads object references as raw addresses, and the numpy dtype
    of what it reads (``<u8`` in place of each reference)."""
    kind = description["kind"]
    if kind == "reference":
        return h5py.h5t.STD_REF_OBJ, np.dtype("<u8")
    if kind != "compound":
        dtype = dtype_from_description(description)
        return h5py.h5t.py_create(dtype), dtype
    names, formats, offsets, members = [], [], [], []
    offset = 0
    for name, _, field in description["fields"]:
        member_type, member_dtype = _address_types(field)
        names.append(name)
        formats.append(member_dtype)
        offsets.append(offset)
        members.append((name, offset, member_type))
        offset += member_dtype.itemsize
    compound = h5py.h5t.create(h5py.h5t.COMPOUND, offset)
    for name, member_offset, member_type in members:
        compound.insert(name.encode(), member_offset, member_type)
    raw = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": offset})
    return compound, raw


def _has_references(description: Description) -> bool:
    kind = description["kind"]
    if kind == "reference":
        return True
    if kind == "compound":
        return any(_has_references(field) for _, _, field in description["fields"])
    return False


def _text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")
