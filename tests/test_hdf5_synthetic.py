"""The engine on the synthetic Allen dataset's LFP files, served by the local S3."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from s3ecephys.hdf5 import open_hdf5
from s3ecephys.nwb.lfp_file import LfpFile


@pytest.fixture(scope="module")
def lfp_files(request):
    """(S3 URL, storage options, local copy) of the synthetic dataset's LFP files."""
    synthetic = pytest.importorskip("s3ecephys.synthetic")
    if not hasattr(synthetic, "write_dataset"):
        pytest.skip("the synthetic dataset writer is not there yet")
    location = request.getfixturevalue("s3_dataset")
    root = Path(request.getfixturevalue("synthetic_dataset").root)
    keys = sorted(location.filesystem().glob(location.url + "session_*/probe_*_lfp.nwb"))
    assert keys, "the synthetic dataset has no LFP file"
    prefix = location.url.removeprefix("s3://")
    return [
        (f"s3://{key}", location.storage_options, root / key.removeprefix(prefix)) for key in keys
    ]


def test_the_lfp_series_reads_like_h5py_in_one_round_trip_after_the_first(lfp_files, tmp_path):
    url, options, local = lfp_files[0]
    f = open_hdf5(url, storage_options=options, cache_dir=tmp_path)
    assert f.store.stats.round_trips <= 4  # a cold open: no HEAD, and no chunk table yet
    theirs = h5py.File(local)
    (name,) = [n for n in f["acquisition"] if n.endswith("_lfp_data")]
    ours_data = f[f"acquisition/{name}/data"]  # through the soft link
    their_data = theirs[f"acquisition/{name}/data"]
    assert (ours_data.shape, ours_data.dtype, ours_data.chunks) == (
        their_data.shape,
        their_data.dtype,
        their_data.chunks,
    )
    assert ours_data.compression == "gzip"
    window = np.s_[100:1350, :]
    f.store.stats.reset()
    assert np.array_equal(ours_data[window], their_data[window])
    # The first read also reads the chunk table, one wave per level of its B-tree.
    assert f.store.stats.round_trips <= 3
    f.store.stats.reset()
    assert np.array_equal(ours_data[window], their_data[window])
    assert f.store.stats.round_trips == 1
    reopened = open_hdf5(url, storage_options=options, cache_dir=tmp_path)
    assert np.array_equal(reopened[f"acquisition/{name}/data"][window], their_data[window])
    assert reopened.store.stats.round_trips == 1  # the table was kept beside the index
    timestamps = f[f"acquisition/{name}/timestamps"]
    assert np.array_equal(timestamps[-10:], theirs[f"acquisition/{name}/timestamps"][-10:])


def test_every_lfp_file_reopens_without_a_request(lfp_files, tmp_path):
    for url, options, _ in lfp_files:
        first = open_hdf5(url, storage_options=options, cache_dir=tmp_path)
        again = open_hdf5(url, storage_options=options, cache_dir=tmp_path)
        assert first.store.stats.requests >= 2
        assert (again.store.stats.requests, again.store.stats.bytes) == (0, 0)


def test_an_lfp_series_first_looked_at_reads_both_chunk_tables_in_one_walk(lfp_files, tmp_path):
    url, options, local = lfp_files[0]
    probe_id = int(Path(url).name.split("_")[1])
    f = open_hdf5(url, storage_options=options, cache_dir=tmp_path)
    lfp = LfpFile(f, probe_id)
    f.store.stats.reset()
    times, _ = lfp.coordinates()
    with h5py.File(local) as theirs:
        assert np.array_equal(times, theirs[lfp.timestamps.name][()])
    # The data's table came with the timestamps': the dask array costs no request.
    assert lfp.data.index.chunk_table is not None
    read = f.store.stats.copy()
    lfp.data.to_dask()
    assert f.store.stats.requests == read.requests
