"""HDF5 element types as JSON-safe descriptions, and back to the numpy dtypes h5py would give.

A description is a small dict (``{"kind": "numpy", "descr": ">f4"}``, ``{"kind": "vlen_string",
"encoding": "utf-8"}``, compounds with their byte offsets ...). Byte order and field offsets are
kept, because raw bytes read from the file are interpreted with exactly this dtype. The numpy dtypes
rebuilt here carry the same metadata as h5py's (``string_dtype``, ``enum_dtype``), so code written
against h5py can inspect them the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from s3ecephys.hdf5.reference import Reference

Description = dict[str, Any]


def describe_dtype(dtype: np.dtype) -> Description:
    """The JSON-safe description of an h5py dtype (strings, references and enums included)."""
    # Imported here: reading an index (and rebuilding dtypes) must not need h5py.
    import h5py

    string = h5py.check_string_dtype(dtype)
    if string is not None:
        if string.length is None:
            return {"kind": "vlen_string", "encoding": string.encoding}
        return {"kind": "fixed_string", "encoding": string.encoding, "length": string.length}
    reference = h5py.check_ref_dtype(dtype)
    if reference is not None:
        return {"kind": "reference", "region": reference is h5py.RegionReference}
    base = h5py.check_vlen_dtype(dtype)
    if base is not None:
        if base in (h5py.Reference, h5py.RegionReference):  # a class, not a dtype
            return {"kind": "vlen", "base": describe_dtype(h5py.ref_dtype)}
        return {"kind": "vlen", "base": describe_dtype(np.dtype(base))}
    enum = h5py.check_enum_dtype(dtype)
    if enum is not None:
        return {"kind": "enum", "descr": dtype.str, "values": {k: int(v) for k, v in enum.items()}}
    if dtype.fields is not None:
        return {
            "kind": "compound",
            "itemsize": dtype.itemsize,
            "fields": [
                [name, int(dtype.fields[name][1]), describe_dtype(dtype.fields[name][0])]
                for name in dtype.names
            ],
        }
    if dtype.subdtype is not None:
        base_dtype, shape = dtype.subdtype
        return {"kind": "array", "base": describe_dtype(base_dtype), "shape": list(shape)}
    if dtype.kind == "O":
        raise TypeError(f"unsupported HDF5 element type {dtype!r}")
    return {"kind": "numpy", "descr": dtype.str}


def dtype_from_description(description: Description) -> np.dtype:
    """The numpy dtype for a description made by :func:`describe_dtype`."""
    kind = description["kind"]
    if kind == "numpy":
        return np.dtype(description["descr"])
    if kind == "vlen_string":
        # What h5py.string_dtype() gives: str for UTF-8, bytes for ASCII.
        vlen = str if description["encoding"] == "utf-8" else bytes
        return np.dtype("O", metadata={"vlen": vlen})
    if kind == "fixed_string":
        # As h5py >= 3.10 gives them: the encoding in the metadata, ASCII ones too.
        encoding = description["encoding"]
        return np.dtype(f"S{description['length']}", metadata={"h5py_encoding": encoding})
    if kind == "reference":
        # h5py's ref_dtype metadata, naming the class values have here.
        return np.dtype("O", metadata={"ref": Reference})
    if kind == "vlen":
        # What h5py.vlen_dtype() gives: the element type in the metadata.
        return np.dtype("O", metadata={"vlen": dtype_from_description(description["base"]).type})
    if kind == "enum":
        return np.dtype(description["descr"], metadata={"enum": dict(description["values"])})
    if kind == "compound":
        fields = description["fields"]
        return np.dtype(
            {
                "names": [name for name, _, _ in fields],
                "formats": [dtype_from_description(field) for _, _, field in fields],
                "offsets": [offset for _, offset, _ in fields],
                "itemsize": description["itemsize"],
            }
        )
    if kind == "array":
        return np.dtype((dtype_from_description(description["base"]), tuple(description["shape"])))
    raise ValueError(f"unknown dtype description {description!r}")


def is_raw_decodable(description: Description) -> bool:
    """Whether the file's bytes, read as this dtype, are the values (no heap, no conversion).

    Fixed-length strings are excluded on purpose: HDF5 converts their padding (space-padded to
    null-padded) on read, which raw bytes would not.
    """
    kind = description["kind"]
    if kind in ("numpy", "enum"):
        return np.dtype(description["descr"]).kind in "biufcV"
    if kind == "compound":
        return all(is_raw_decodable(field) for _, _, field in description["fields"])
    if kind == "array":
        return is_raw_decodable(description["base"])
    return False
