"""s3ecephys: the Allen Visual Coding - Neuropixels dataset, read in place on S3.

``EcephysProjectCache`` and ``EcephysSession`` keep AllenSDK's names and results; ``open_hdf5``
is the engine underneath (any HDF5 file on S3 or on disk, read chunk by chunk). The errors a
user may want to catch are here too: no route to the endpoint, a read that could not complete, a
file replaced since it was indexed, a file missing from a local-only cache, a filter not decoded.
"""

from s3ecephys._version import __version__
from s3ecephys.allen.align import align_to_events
from s3ecephys.allen.cache import EcephysProjectCache
from s3ecephys.allen.files import MissingLocalFileError
from s3ecephys.allen.session import EcephysSession
from s3ecephys.allen.spike_selection import UnitSpikeTimes
from s3ecephys.hdf5 import open_hdf5
from s3ecephys.hdf5.codecs import UnsupportedFilterError
from s3ecephys.storage.attempts import ReadFailedError
from s3ecephys.storage.location import DataLocation, EndpointUnreachableError, LocationError
from s3ecephys.storage.objects import ObjectChangedError

__all__ = [
    "DataLocation",
    "EcephysProjectCache",
    "EcephysSession",
    "EndpointUnreachableError",
    "LocationError",
    "MissingLocalFileError",
    "ObjectChangedError",
    "ReadFailedError",
    "UnitSpikeTimes",
    "UnsupportedFilterError",
    "__version__",
    "align_to_events",
    "open_hdf5",
]
