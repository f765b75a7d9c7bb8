"""Shared fixtures: a hermetic environment, a local S3, the synthetic dataset served from it.

No test reaches AWS: the environment variables that could point a client somewhere, or hand it
credentials, are removed for the session, and resolving an AWS host name fails loudly.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator

import pytest
from session_files import s3_project_cache

from s3ecephys import EcephysProjectCache
from s3ecephys.hdf5.table_prefetch import wait_for_pending
from s3ecephys.storage.location import DEFAULT_PREFIX, DataLocation
from s3ecephys.testing import LocalS3

# Metadata endpoints of EC2, where botocore looks for credentials when it has none.
_METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("fd00:ec2::254"),
}


def _is_aws(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.rstrip(".").lower()
    if name.endswith((".amazonaws.com", ".amazonaws.com.cn", ".api.aws")):
        return True
    try:
        return ipaddress.ip_address(name) in _METADATA_ADDRESSES
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def background_reads_end_with_their_test() -> Iterator[None]:
    """The chunk tables an open reads in the background are read before the next test starts
    (else one test's walk could write into, or log into, the next one)."""
    yield
    assert wait_for_pending(), "a background chunk-table read did not finish within 10 s"


@pytest.fixture(scope="session", autouse=True)
def hermetic_environment() -> Iterator[None]:
    """Clear AWS_* and S3ECEPHYS_* variables and block AWS host names for the whole session.

    Function-scoped ``monkeypatch.setenv`` in a test still works and is undone after it. Server
    processes started here inherit the cleared environment.
    """
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("AWS_", "S3ECEPHYS_")):
                patch.delenv(name)
        # A developer's ~/.aws files could name endpoints or credential processes.
        patch.setenv("AWS_CONFIG_FILE", os.devnull)
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")

        real_getaddrinfo = socket.getaddrinfo

        def getaddrinfo(host, *args, **kwargs):
            if _is_aws(host):
                raise socket.gaierror(
                    socket.EAI_NONAME, f"tests must not reach AWS, but resolved {host!r}"
                )
            return real_getaddrinfo(host, *args, **kwargs)

        patch.setattr(socket, "getaddrinfo", getaddrinfo)
        yield


@pytest.fixture(scope="session")
def local_s3(hermetic_environment: None) -> Iterator[LocalS3]:
    """A running local S3 with the empty, public bucket ``allen-brain-observatory``.

    Shared by the whole session: put test objects under a prefix of your own, never under the
    dataset prefix that ``s3_dataset`` fills.
    """
    with LocalS3() as s3:
        yield s3


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory: pytest.TempPathFactory):
    """The small synthetic dataset in the Allen layout, written once per session."""
    from s3ecephys.synthetic import write_dataset

    return write_dataset(tmp_path_factory.mktemp("dataset"))


@pytest.fixture(scope="session")
def s3_dataset(local_s3: LocalS3, synthetic_dataset) -> DataLocation:
    """The synthetic dataset on the local S3 under the real prefix, as a :class:`DataLocation`."""
    local_s3.upload_directory(synthetic_dataset.root, prefix=DEFAULT_PREFIX)
    return local_s3.location(DEFAULT_PREFIX)


@pytest.fixture(scope="module")
def project_cache(s3_dataset, tmp_path_factory) -> EcephysProjectCache:
    """The project read in place from the local S3 (CSVs kept in a scratch cache folder), one
    per test module."""
    return s3_project_cache(s3_dataset, tmp_path_factory.mktemp("cache"))
