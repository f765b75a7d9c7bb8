"""Which NWB layout the synthetic files carry, and the HDF5 edits that give a file written by
today's pynwb the layout of the real 2020 files (NWB 2.2.2).

The Allen files were written by pynwb 1.3 (core 2.2.2, hdmf-common 1.1.3) with the extension
``ndx-aibs-ecephys`` 0.2.0. Today's pynwb writes the same objects under the newer schema; these
edits undo what differs, as found by writing the same objects with pynwb 1.3.0 / hdmf 1.6.3 and
with today's pynwb and comparing every path, attribute and dtype:

- the root's ``nwb_version`` (``2.11.0`` → ``2.2.2``) and the cached specifications (the 2.2.2
  files cache ``core/2.2.2``, ``hdmf-common/1.1.3`` and ``ndx-aibs-ecephys/0.2.0``);
- the electrodes table is a plain ``DynamicTable`` (hdmf-common), not core's ``ElectrodesTable``;
- the intervals' ``timeseries`` column is a ``VectorData`` (hdmf-common), not core's
  ``TimeSeriesReferenceVectorData``; its compound dtype is the same;
- TimeSeries ``data`` has no ``offset`` attribute, ``VectorIndex`` no ``description``,
  ``subject/age`` no ``reference``, and the ``EcephysProbe`` devices no ``description`` (pynwb
  1.3's generated class took the argument and dropped it);
- ``VectorIndex`` data is int64: hdmf 1.x kept the writer's integers, where today's hdmf
  narrows them to the smallest unsigned type that fits (and converts int64 to uint64), so
  each index is written again as int64.

``nwb_2_2_2_specifications.json`` holds the cached specification texts of such a file, exactly
as pynwb 1.3.0 / hdmf 1.6.3 stored them (the extension's from AllenSDK 2.16.2's YAML): public
schema text, one JSON document per cached source.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import h5py
import numpy as np
import numpy.typing as npt

NWB_2_2_2 = "2.2.2"
CURRENT = "current"
NWB_VERSIONS = (NWB_2_2_2, CURRENT)
"""``SyntheticSpec.nwb_version`` values: the real files' layout, or today's pynwb's as written."""

_SPECIFICATIONS_FILE = "nwb_2_2_2_specifications.json"
# neurodata_type written by today's pynwb -> (type, namespace) of the 2.2.2 files.
_RETYPED = {
    "ElectrodesTable": ("DynamicTable", "hdmf-common"),
    "TimeSeriesReferenceVectorData": ("VectorData", "hdmf-common"),
}
# (neurodata_type of the object, attribute) that a 2.2.2 file written by pynwb 1.3 lacks.
_ABSENT_ATTRIBUTES = {("VectorIndex", "description"), ("EcephysProbe", "description")}
SUBJECT_AGE = "general/subject/age"


def check_nwb_version(nwb_version: str) -> str:
    """``nwb_version`` if it is one of :data:`NWB_VERSIONS`, else a ``ValueError``."""
    if nwb_version not in NWB_VERSIONS:
        raise ValueError(
            f"nwb_version must be one of {', '.join(map(repr, NWB_VERSIONS))}, not {nwb_version!r}"
        )
    return nwb_version


@cache
def specifications_2_2_2() -> dict[str, str]:
    """The cached specifications of a 2.2.2 Allen file: ``"<namespace>/<version>/<source>"`` ->
    the JSON text stored in ``/specifications``."""
    text = resources.files(__package__).joinpath(_SPECIFICATIONS_FILE).read_text("utf-8")
    return json.loads(text)


def to_nwb_2_2_2(handle: h5py.File) -> None:
    """Edit a file written by today's pynwb (without a cached spec) into the 2.2.2 layout."""
    handle.attrs["nwb_version"] = NWB_2_2_2
    indexes: list[str] = []
    handle.visititems(lambda name, obj: _edit_object(name, obj, indexes))
    for path in indexes:
        rewrite_index(handle, path)
    if SUBJECT_AGE in handle and "reference" in handle[SUBJECT_AGE].attrs:
        del handle[SUBJECT_AGE].attrs["reference"]
    _cache_specifications(handle)


def rewrite_index(handle: h5py.File, path: str, dtype: npt.DTypeLike = np.int64) -> None:
    """Replace an index dataset by a copy of type ``dtype`` with the same attributes (its
    ``target`` reference included); nothing refers to the index itself, so nothing else
    changes. The values must fit ``dtype``."""
    old = handle[path]
    if old.dtype == dtype:
        return
    values = old[()]
    if values.size and not np.can_cast(np.min_scalar_type(values.max()), dtype):
        raise ValueError(f"{path}: values up to {values.max()} do not fit {np.dtype(dtype)}")
    values = values.astype(dtype)
    attributes = dict(old.attrs)
    parent, name = old.parent, path.rsplit("/", 1)[-1]
    del parent[name]
    new = parent.create_dataset(name, data=values)
    for key, value in attributes.items():
        new.attrs[key] = value


def _cache_specifications(handle: h5py.File) -> None:
    if "specifications" in handle:
        raise ValueError(
            f"{handle.filename} already caches a specification: write it with cache_spec=False "
            "before giving it the 2.2.2 one"
        )
    specifications = handle.create_group("specifications")
    text = h5py.string_dtype("utf-8")
    for path, document in specifications_2_2_2().items():
        specifications.create_dataset(path, data=document, dtype=text)
    handle.attrs.create(".specloc", specifications.ref, dtype=h5py.ref_dtype)


def _edit_object(name: str, obj: h5py.Group | h5py.Dataset, indexes: list[str]) -> None:
    """Retype and strip one object in place; collect the VectorIndex paths in ``indexes`` (a
    dataset cannot be replaced while the file is being visited)."""
    attributes = obj.attrs
    kind = _text(attributes.get("neurodata_type"))
    if kind == "VectorIndex":
        indexes.append(name)
    if kind in _RETYPED:
        attributes["neurodata_type"], attributes["namespace"] = _RETYPED[kind]
    for owner, attribute in _ABSENT_ATTRIBUTES:
        if kind == owner and attribute in attributes:
            del attributes[attribute]
    # A TimeSeries' data: the only datasets with both ``conversion`` and ``offset``.
    if isinstance(obj, h5py.Dataset) and "conversion" in attributes and "offset" in attributes:
        del attributes["offset"]


def _text(value) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
