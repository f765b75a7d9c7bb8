"""The names the issues fix are importable from the package itself."""

import h5py
import numpy as np

import s3ecephys


def test_open_hdf5_is_public_and_reads_a_local_file(tmp_path):
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as file:
        file.create_dataset("a/b", data=np.arange(12.0).reshape(3, 4), chunks=(2, 2))

    dataset = s3ecephys.open_hdf5(path, cache_dir=tmp_path / "index")["a/b"]
    np.testing.assert_array_equal(dataset[1:, ::2], [[4.0, 6.0], [8.0, 10.0]])
