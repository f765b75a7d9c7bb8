"""The names the issues fix are importable from the package itself."""

import socket

import h5py
import numpy as np
import pytest

import s3ecephys


def test_open_hdf5_is_public_and_reads_a_local_file(tmp_path):
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as file:
        file.create_dataset("a/b", data=np.arange(12.0).reshape(3, 4), chunks=(2, 2))

    dataset = s3ecephys.open_hdf5(path, cache_dir=tmp_path / "index")["a/b"]
    np.testing.assert_array_equal(dataset[1:, ::2], [[4.0, 6.0], [8.0, 10.0]])


def test_the_errors_users_catch_are_public(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(s3ecephys.EndpointUnreachableError, match=f"127.0.0.1:{port}"):
        s3ecephys.open_hdf5(
            "s3://allen-brain-observatory/x.nwb",
            storage_options={"endpoint_url": f"http://127.0.0.1:{port}"},
            cache_dir=tmp_path,
        )
    assert issubclass(s3ecephys.EndpointUnreachableError, s3ecephys.LocationError)
    cache = s3ecephys.EcephysProjectCache(manifest=tmp_path / "empty" / "manifest.json",
                                          policy="local")  # fmt: skip
    with pytest.raises(s3ecephys.MissingLocalFileError, match="sessions.csv"):
        cache.get_session_table()
