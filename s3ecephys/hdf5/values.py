"""Attribute values and small dataset contents as JSON, and back.

Numeric arrays travel as base64 of their bytes (exact, byte order kept); arrays holding Python
objects (variable-length strings, references, ragged sequences) travel as lists. Object references
are stored as the path of their target, which is all a reader of an indexed file can use.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from s3ecephys.hdf5.dtypes import Description, describe_dtype, dtype_from_description
from s3ecephys.hdf5.reference import Reference

__all__ = ["Encoded", "Reference", "decode_array", "decode_value", "encode_value"]

Encoded = dict[str, Any]


def encode_value(value: Any, description: Description | None = None) -> Encoded:
    """A JSON-safe form of an attribute value or dataset content (see :func:`decode_value`).

    Accepts None, str, bytes, :class:`Reference` and numpy scalars or arrays (object arrays may
    hold the same kinds of items, structured arrays may have such fields). ``description`` is the
    element type to record for an array whose own dtype does not say it (object arrays of
    strings or references built by hand).
    """
    if value is None:
        return {"kind": "none"}
    if isinstance(value, str):
        return {"kind": "str", "value": value}
    if isinstance(value, bytes):
        return {"kind": "bytes", "value": _bytes_to_text(value)}
    if isinstance(value, Reference):
        return {"kind": "reference", "path": value.path}
    array = np.asarray(value)
    encoded: Encoded = {
        "kind": "array",
        "dtype": description or describe_dtype(array.dtype),
        "shape": list(array.shape),
    }
    if _holds_objects(array.dtype):
        encoded["items"] = [_encode_item(item) for item in array.ravel().tolist()]
    else:
        encoded["base64"] = base64.b64encode(np.ascontiguousarray(array).tobytes()).decode()
    return encoded


def decode_value(encoded: Encoded) -> Any:
    """The value :func:`encode_value` was given; 0-d arrays come back as numpy scalars."""
    kind = encoded["kind"]
    if kind == "none":
        return None
    if kind == "str":
        return encoded["value"]
    if kind == "bytes":
        return _text_to_bytes(encoded["value"])
    if kind == "reference":
        return Reference(encoded["path"])
    array = decode_array(encoded)
    return array[()] if array.ndim == 0 else array


def decode_array(encoded: Encoded) -> np.ndarray:
    """An ``"array"`` encoding as a numpy array (0-d arrays stay arrays)."""
    dtype = dtype_from_description(encoded["dtype"])
    shape = tuple(encoded["shape"])
    if "base64" in encoded:
        data = base64.b64decode(encoded["base64"])
        # A copy: frombuffer over bytes is read-only, and callers may write into results.
        return np.frombuffer(data, dtype=dtype).reshape(shape).copy()
    array = np.empty(len(encoded["items"]), dtype=dtype)
    items = [_decode_item(item) for item in encoded["items"]]
    if dtype.fields is not None:
        for index, item in enumerate(items):
            array[index] = tuple(item)
    else:
        for index, item in enumerate(items):
            array[index] = item
    return array.reshape(shape)


def _holds_objects(dtype: np.dtype) -> bool:
    if dtype.fields is not None:
        return any(_holds_objects(dtype.fields[name][0]) for name in dtype.names)
    if dtype.subdtype is not None:
        return _holds_objects(dtype.subdtype[0])
    return dtype.kind == "O"


def _encode_item(item: Any) -> Any:
    # Items of ``tolist()``: Python scalars, str, bytes, Reference, None, tuples (records) or
    # arrays (ragged sequences); JSON natives are kept as they are to keep the index small.
    if item is None or isinstance(item, str | bool | int | float):
        return item
    if isinstance(item, bytes):
        return {"bytes": _bytes_to_text(item)}
    if isinstance(item, Reference):
        return {"reference": item.path}
    if isinstance(item, tuple):
        return [_encode_item(field) for field in item]
    if isinstance(item, np.ndarray | np.generic):
        return {"array": encode_value(np.asarray(item))}
    raise TypeError(f"cannot store {type(item).__name__} value {item!r} in the file index")


def _decode_item(item: Any) -> Any:
    if isinstance(item, list):
        return tuple(_decode_item(field) for field in item)
    if isinstance(item, dict):
        if "bytes" in item:
            return _text_to_bytes(item["bytes"])
        if "reference" in item:
            return Reference(item["reference"])
        return decode_array(item["array"])
    return item


def _bytes_to_text(value: bytes) -> str:
    # Latin-1 maps every byte to one code point, so any bytes survive the trip through JSON.
    return value.decode("latin-1")


def _text_to_bytes(value: str) -> bytes:
    return value.encode("latin-1")
