"""Test helpers: a local S3 that serves data as the public bucket does.

``from s3ecephys.testing import LocalS3`` needs moto's server (``pip install "moto[server]"``, part
of the ``test`` extra).
"""

from s3ecephys.testing.local_s3 import LocalS3

__all__ = ["LocalS3"]
