"""s3ecephys: the Allen Visual Coding - Neuropixels dataset, read in place on S3."""

from s3ecephys._version import __version__
from s3ecephys.hdf5 import open_hdf5
from s3ecephys.storage.location import DataLocation

__all__ = ["DataLocation", "__version__", "open_hdf5"]
