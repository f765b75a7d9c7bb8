"""An xarray engine: ``xr.open_dataset(url, engine="s3ecephys")`` over the s3ecephys reader.

Without ``group``, an Allen probe LFP file opens as ``LFP`` (time, channel) with the timestamps
as ``time``, the electrode ids as ``channel`` and the electrode columns (structure, position …)
as channel coordinates. ``group="path/in/file"`` opens any HDF5 group: each dataset in it becomes
a variable (``timestamps`` becomes the ``time`` coordinate, a table's ``id`` the ``id``
coordinate, other axes are named ``phony_dim_<n>`` by size, as h5netcdf does).

Values stay in S3 until used: numeric datasets are wrapped in xarray's ``BackendArray`` (xarray
indexes them lazily; each read fetches only the chunks it touches, concurrently), and
``encoding["preferred_chunks"]`` holds the storage chunks, so ``chunks={}`` or
``chunks="auto"`` gives dask blocks made of whole storage chunks. Text datasets (small) are read
at open. Object references and compound datasets are left out.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import xarray as xr
from xarray.backends import BackendArray, BackendEntrypoint
from xarray.core import indexing

from s3ecephys.hdf5 import Dataset, Group, Reference, open_hdf5
from s3ecephys.nwb.lfp_file import LfpFile
from s3ecephys.nwb.session_file import ELECTRODES
from s3ecephys.nwb.tables import as_text, read_table

_PROBE_LFP = re.compile(r"probe_(\d+)_lfp")
# Datasets that become a dimension's coordinate, under the dimension's name.
_INDEX_DATASETS = {"timestamps": "time", "id": "id"}


class LazyHDF5Array(BackendArray):
    """A dataset read through xarray's lazy indexing: one concurrent fetch per read."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self.shape = tuple(dataset.shape)
        self.dtype = dataset.dtype

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        # The reader takes h5py's expressions: slices and one integer array along one axis.
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER_1VECTOR, self._read
        )

    def _read(self, key: tuple[Any, ...]) -> np.ndarray:
        return np.asarray(self.dataset[key])


def _clean_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes xarray (and netCDF writers) can hold: text and numbers, not references."""
    clean = {}
    for name, value in attrs.items():
        value = as_text(value)
        if isinstance(value, Reference) or value is None:
            continue
        if isinstance(value, np.ndarray) and value.dtype == object:
            if not all(isinstance(v, str) for v in value.ravel()):
                continue
            value = list(value.ravel())
        clean[name] = value
    return clean


def _lazy_variable(dataset: Dataset, dims: tuple[str, ...]) -> xr.Variable:
    data = indexing.LazilyIndexedArray(LazyHDF5Array(dataset))
    variable = xr.Variable(dims, data, attrs=_clean_attrs(dataset.attrs))
    if dataset.chunks is not None:
        variable.encoding["chunksizes"] = tuple(dataset.chunks)
        variable.encoding["preferred_chunks"] = dict(zip(dims, dataset.chunks, strict=True))
    return variable


def _text_variable(dataset: Dataset, dims: tuple[str, ...]) -> xr.Variable | None:
    """A (small) text dataset read now, or None when it holds something else (references)."""
    values = as_text(np.asarray(dataset[()]))
    if values.size and not all(isinstance(v, str) for v in values.ravel()):
        return None
    return xr.Variable(dims, _fixed_width(values), attrs=_clean_attrs(dataset.attrs))


def _fixed_width(values: np.ndarray) -> np.ndarray:
    """Text as numpy's fixed-width ``str``: dask cannot size object arrays (``chunks="auto"``
    fails on them), netCDF writers take both."""
    if values.dtype == object and all(isinstance(v, str) for v in values.ravel()):
        return values.astype(str)
    return values


def _readable(dataset: Dataset) -> bool:
    return (
        dataset.shape is not None
        and dataset.dtype.names is None
        and dataset.index.unreadable is None
    )


def open_lfp_dataset(file: Any) -> xr.Dataset:
    """An Allen probe LFP file as ``LFP`` (time, channel) with time and channel coordinates."""
    probe_ids = {int(m.group(1)) for name in file.get("acquisition", {})
                 if (m := _PROBE_LFP.fullmatch(name) or _PROBE_LFP.match(name))}
    if len(probe_ids) != 1:
        raise ValueError(
            f"{file.url} is not a probe LFP file (no single acquisition/probe_<id>_lfp group); "
            "open one of its groups with group='path/in/file' (s3ecephys info lists them)"
        )
    probe_id = probe_ids.pop()
    lfp = LfpFile(file, probe_id)
    times, channel_ids = lfp.coordinates()
    electrodes = read_table(file[ELECTRODES])
    channel_columns = {
        name: ("channel", _fixed_width(column.to_numpy()))
        for name, column in electrodes.reindex(channel_ids).items()
        if column.map(np.ndim).eq(0).all()
    }
    variable = _lazy_variable(lfp.data, ("time", "channel"))
    return xr.Dataset(
        {"LFP": variable},
        coords={"time": ("time", times), "channel": ("channel", channel_ids), **channel_columns},
        attrs={"probe_id": probe_id, "source": file.url,
               **_clean_attrs(lfp.series.attrs)},
    )


def _dimension_names(datasets: Mapping[str, Dataset]) -> dict[int, str]:
    """A dimension name per axis length: the index datasets' names first, then phony ones."""
    names: dict[int, str] = {}
    for dataset_name, dim in _INDEX_DATASETS.items():
        dataset = datasets.get(dataset_name)
        if dataset is not None and len(dataset.shape) == 1:
            names.setdefault(dataset.shape[0], dim)
    sizes = sorted({n for d in datasets.values() for n in d.shape} - set(names))
    names.update({size: f"phony_dim_{rank}" for rank, size in enumerate(sizes)})
    return names


def _axis_dims(name: str, shape: Iterable[int], by_size: Mapping[int, str]) -> tuple[str, ...]:
    dims: list[str] = []
    for axis, size in enumerate(shape):
        dim = by_size[size]
        # A square array cannot use one dimension twice.
        dims.append(dim if dim not in dims else f"{name}_dim_{axis}")
    return tuple(dims)


def open_group_dataset(group: Group) -> xr.Dataset:
    """Every readable dataset of one HDF5 group as a variable (lazy, but text)."""
    datasets = {name: group[name] for name in group if isinstance(group[name], Dataset)}
    datasets = {name: d for name, d in datasets.items() if _readable(d)}
    if not datasets:
        raise ValueError(
            f"group {group.name!r} holds no dataset xarray can represent (its members: "
            f"{sorted(group)})"
        )
    by_size = _dimension_names(datasets)
    variables: dict[str, xr.Variable] = {}
    coords: dict[str, xr.Variable] = {}
    for name, dataset in datasets.items():
        dims = _axis_dims(name, dataset.shape, by_size)
        if dataset.dtype.kind in "biufc":
            variable = _lazy_variable(dataset, dims)
        else:
            variable = _text_variable(dataset, dims)
            if variable is None:
                continue
        index_dim = _INDEX_DATASETS.get(name)
        if index_dim is not None and dims == (index_dim,):
            coords[index_dim] = variable.load()
        else:
            variables[name] = variable
    return xr.Dataset(variables, coords=coords, attrs=_clean_attrs(group.attrs))


def open_nwb_dataset(
    filename_or_obj: str | os.PathLike[str],
    *,
    group: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    drop_variables: Iterable[str] | None = None,
) -> xr.Dataset:
    """The Dataset ``xr.open_dataset(..., engine="s3ecephys")`` returns (see the module)."""
    file = open_hdf5(filename_or_obj, storage_options=storage_options, cache_dir=cache_dir)
    if group is None:
        dataset = open_lfp_dataset(file)
    else:
        if group.strip("/") and group.strip("/") not in file:
            raise KeyError(f"no group {group!r} in {file.url}")
        node = file[group.strip("/")] if group.strip("/") else file
        if not isinstance(node, Group):
            raise ValueError(f"{group!r} is a dataset; pass the group that holds it")
        dataset = open_group_dataset(node)
    dropped = [name for name in drop_variables or () if name in dataset.variables]
    return dataset.drop_vars(dropped)


class S3EcephysBackendEntrypoint(BackendEntrypoint):
    """``engine="s3ecephys"``: NWB/HDF5 files on S3 or on disk, read in place and lazily."""

    description = "Allen NWB (LFP) and any HDF5 group, read in place on S3 by s3ecephys"
    open_dataset_parameters = (
        "filename_or_obj", "drop_variables", "group", "storage_options", "cache_dir"
    )

    def open_dataset(  # type: ignore[override]
        self,
        filename_or_obj: str | os.PathLike[str],
        *,
        drop_variables: Iterable[str] | None = None,
        group: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> xr.Dataset:
        return open_nwb_dataset(
            filename_or_obj,
            group=group,
            storage_options=storage_options,
            cache_dir=cache_dir,
            drop_variables=drop_variables,
        )

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        return isinstance(filename_or_obj, str | os.PathLike) and os.fspath(
            filename_or_obj
        ).endswith(".nwb")
