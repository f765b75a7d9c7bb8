"""s3ecephys: the Allen Visual Coding - Neuropixels dataset, read in place on S3.

``EcephysProjectCache`` and ``EcephysSession`` keep AllenSDK's names and results; ``open_hdf5``
is the engine underneath (any HDF5 file on S3 or on disk, read chunk by chunk).
"""

from s3ecephys._version import __version__
from s3ecephys.allen.align import align_to_events
from s3ecephys.allen.cache import EcephysProjectCache
from s3ecephys.allen.session import EcephysSession
from s3ecephys.allen.spike_selection import UnitSpikeTimes
from s3ecephys.hdf5 import open_hdf5
from s3ecephys.storage.location import DataLocation

__all__ = [
    "DataLocation",
    "EcephysProjectCache",
    "EcephysSession",
    "UnitSpikeTimes",
    "__version__",
    "align_to_events",
    "open_hdf5",
]
