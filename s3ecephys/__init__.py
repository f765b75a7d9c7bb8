"""s3ecephys: the Allen Visual Coding - Neuropixels dataset, read in place on S3."""

from s3ecephys._version import __version__

__all__ = ["__version__"]
