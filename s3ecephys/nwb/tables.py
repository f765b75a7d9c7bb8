"""NWB DynamicTables (units, electrodes, intervals) as pandas frames, from a few batched reads.

A DynamicTable is a group with an ``id`` dataset, one dataset per column (attribute ``colnames``
gives their order) and, for ragged columns, a ``<column>_index`` dataset whose entry ``i`` is the
exclusive end of row ``i`` in the column's data. Everything here works on h5py-like objects
(``group[name]``, ``.attrs``, ``dataset[()]``), so the same code reads through the s3ecephys
engine and through h5py; with the engine, all columns of a table come in one concurrent fetch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from s3ecephys.hdf5.array import Dataset, read_together


def as_text(value: Any) -> Any:
    """Decode HDF5 byte strings (scalars or arrays of them) to ``str``; anything else unchanged."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.dtype.kind in "OS":
        return np.array([as_text(item) for item in value.ravel()], dtype=object).reshape(
            value.shape
        )
    return value


def attribute_text(node: Any, name: str, default: str | None = None) -> str | None:
    """A text attribute, decoded; ``default`` when absent."""
    if name not in node.attrs:
        return default
    value = as_text(node.attrs[name])
    if isinstance(value, np.ndarray):
        value = value.item() if value.size == 1 else value
    return str(value)


def read_datasets(datasets: Sequence[Any]) -> list[np.ndarray]:
    """Whole datasets; through the engine (datasets of one file) in one concurrent wave."""
    if datasets and all(isinstance(dataset, Dataset) for dataset in datasets):
        return read_together([(dataset, ()) for dataset in datasets])
    return [dataset[()] for dataset in datasets]


def column_names(table: Any) -> list[str]:
    """The table's columns in their declared order (``colnames``), then any undeclared ones."""
    declared = [str(name) for name in as_text(np.atleast_1d(table.attrs.get("colnames", [])))]
    others = sorted(
        name
        for name in table
        if name != "id" and not name.endswith("_index") and name not in declared
    )
    return [name for name in declared if name in table] + others


def split_ragged(data: np.ndarray, index: np.ndarray) -> list[np.ndarray]:
    """Rows of a ragged column: ``index`` holds each row's exclusive end (any integer width)."""
    ends = np.asarray(index, dtype=np.int64)
    return np.split(np.asarray(data), ends[:-1]) if len(ends) else []


def read_table(
    table: Any,
    *,
    columns: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    index_name: str = "id",
) -> pd.DataFrame:
    """A DynamicTable as a frame indexed by its ``id``.

    ``columns`` limits the columns read (default: all; names the table lacks are skipped);
    ``exclude`` leaves some out (large ragged columns such as ``spike_times`` must be excluded:
    they are read lazily elsewhere). Ragged columns become one array per row; object-reference
    and compound columns (``timeseries``, ``group``) are left out, as they point into the file
    rather than hold values.
    """
    frame, _ = read_table_with(
        table, (), columns=columns, exclude=exclude, index_name=index_name
    )
    return frame


def read_table_with(
    table: Any,
    extra: Sequence[Any],
    *,
    columns: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    index_name: str = "id",
) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """:func:`read_table` plus the whole values of the ``extra`` datasets (of the same file), all
    in one concurrent fetch: e.g. the units table with the ``_index`` datasets of its ragged
    columns."""
    skipped = set(exclude)
    names = [
        name
        for name in (column_names(table) if columns is None else list(columns))
        if name not in skipped and name in table
    ]
    wanted: list[Any] = [table["id"]]
    layout = []
    for name in names:
        dataset = table[name]
        if _is_reference(dataset):
            continue
        ragged = f"{name}_index" in table
        layout.append((name, ragged))
        wanted.append(dataset)
        if ragged:
            wanted.append(table[f"{name}_index"])
    values = iter(read_datasets([*wanted, *extra]))
    ids = np.asarray(next(values)).astype(np.int64)
    frame: dict[str, Any] = {}
    for name, ragged in layout:
        data = as_text(next(values))
        if ragged:
            frame[name] = pd.Series(split_ragged(data, next(values)), dtype=object)
        elif np.ndim(data) > 1:
            frame[name] = pd.Series(list(data), dtype=object)
        elif getattr(data, "dtype", None) == np.dtype(object):
            # Text stays ``object`` (pandas 3 would infer ``str``), as in pynwb's frames under
            # the pandas 1.5 that AllenSDK 2.16.2 pins.
            frame[name] = pd.Series(data, dtype=object)
        else:
            frame[name] = pd.Series(data)
    table_frame = pd.DataFrame(frame, index=pd.RangeIndex(len(ids)))
    return table_frame.set_axis(pd.Index(ids, name=index_name)), list(values)


def widen_numeric_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Integer columns as int64 and float columns as float64, whatever width the file stores.

    AllenSDK builds its units and channels tables from rows of Python numbers, which pandas reads
    back as int64/float64; files written by newer hdmf may hold narrower or unsigned types.
    """
    kinds = {name: frame[name].dtype.kind for name in frame.columns}
    return frame.astype(
        {name: np.int64 if kind in "iu" else np.float64
         for name, kind in kinds.items() if kind in "iuf"}
    )


def _is_reference(dataset: Any) -> bool:
    dtype = dataset.dtype
    if dtype.names:
        return any(_is_reference_dtype(dtype.fields[name][0]) for name in dtype.names)
    return _is_reference_dtype(dtype)


def _is_reference_dtype(dtype: np.dtype) -> bool:
    import h5py

    return h5py.check_ref_dtype(dtype) is not None
