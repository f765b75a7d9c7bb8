"""HDF5 layer: a one-pass file index, a range planner and lazy arrays.

``open_hdf5(url)`` indexes an HDF5 file once (cached by object version) and answers groups,
attributes and dataset metadata from that index; dataset values are read chunk by chunk with one
concurrent fetch per read, and ``Dataset.to_dask()`` gives picklable dask graphs.
"""

from s3ecephys.hdf5.array import BlockSource, Dataset, StringView
from s3ecephys.hdf5.codecs import ChecksumError, UnsupportedFilterError
from s3ecephys.hdf5.file import File, Group, open_hdf5
from s3ecephys.hdf5.index import (
    ChunkTable,
    DatasetIndex,
    ExternalLinkError,
    FileIndex,
    FilterInfo,
    GroupIndex,
    LinkInfo,
    NamedDatatypeError,
)
from s3ecephys.hdf5.index_cache import IndexCache, default_cache_dir
from s3ecephys.hdf5.inflate import InflateError
from s3ecephys.hdf5.planner import Piece, ReadPlan
from s3ecephys.hdf5.reader import UnreadableDatasetError
from s3ecephys.hdf5.reference import Reference

__all__ = [
    "BlockSource",
    "ChecksumError",
    "ChunkTable",
    "Dataset",
    "DatasetIndex",
    "ExternalLinkError",
    "File",
    "FileIndex",
    "FilterInfo",
    "Group",
    "GroupIndex",
    "IndexCache",
    "InflateError",
    "LinkInfo",
    "NamedDatatypeError",
    "Piece",
    "ReadPlan",
    "Reference",
    "StringView",
    "UnreadableDatasetError",
    "UnsupportedFilterError",
    "default_cache_dir",
    "open_hdf5",
]
