"""No route to the endpoint: every entry point fails within seconds, naming the endpoint and
saying what to do, instead of retrying for minutes.

Three ways an endpoint fails, all on loopback: a closed port (refused at once), a listener whose
accept queue is full (connection attempts are dropped, as by a firewall or a VPC without an S3
endpoint) and a listener that accepts connections but never answers (a broken proxy).
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from s3ecephys import EcephysProjectCache, open_hdf5
from s3ecephys.cli import main
from s3ecephys.storage.location import EndpointUnreachableError, LocationError

BOUND = 10.0


@pytest.fixture
def closed_endpoint() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, so nobody else takes the port; not listening
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def blackholed_endpoint() -> Iterator[str]:
    """Connection attempts get no reply: the listener's queue (length 0) is kept full."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        fillers = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(address)
            fillers.append(filler)
        try:
            yield f"http://127.0.0.1:{address[1]}"
        finally:
            for filler in fillers:
                filler.close()


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """Connections are taken (by the kernel) but no request is ever answered."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.fixture
def short_limits(monkeypatch):
    """Limits shortened through the environment (which the command reads too): the blackholed
    and silent cases then take ~1 s each; the defaults are checked by the slow tests."""
    monkeypatch.setenv("S3ECEPHYS_CONNECT_TIMEOUT", "1")
    monkeypatch.setenv("S3ECEPHYS_FIRST_BYTE_TIMEOUT", "1")


@pytest.fixture
def tables_only_cache(synthetic_dataset, tmp_path):
    """A cache folder holding the project tables but no NWB file."""
    folder = tmp_path / "cache"
    shutil.copytree(synthetic_dataset.root, folder, ignore=shutil.ignore_patterns("*.nwb"))
    return folder


def _session_table(endpoint: str, tmp_path, synthetic_dataset) -> None:
    cache = EcephysProjectCache.from_s3(
        storage_options={"endpoint_url": endpoint}, cache_dir=tmp_path / "empty"
    )
    cache.get_session_table()


def _session_data(endpoint: str, tmp_path, synthetic_dataset) -> None:
    folder = tmp_path / "cache"
    if not folder.exists():
        shutil.copytree(synthetic_dataset.root, folder, ignore=shutil.ignore_patterns("*.nwb"))
    cache = EcephysProjectCache.from_s3(
        storage_options={"endpoint_url": endpoint}, cache_dir=folder,
        index_cache_dir=tmp_path / "indexes",
    )
    cache.get_session_data(int(synthetic_dataset.session_ids[0]))


def _open_hdf5(endpoint: str, tmp_path, synthetic_dataset) -> None:
    open_hdf5(
        "s3://allen-brain-observatory/visual-coding-neuropixels/ecephys-cache/some.nwb",
        storage_options={"endpoint_url": endpoint},
        cache_dir=tmp_path / "indexes",
    )


def _download_command(endpoint: str, tmp_path, synthetic_dataset) -> None:
    code = main(["download", "--cache", str(tmp_path / "cache"), "--endpoint-url", endpoint,
                 "--quiet"])
    assert code == 2


ENTRY_POINTS: dict[str, Callable[..., None]] = {
    "get_session_table": _session_table,
    "get_session_data": _session_data,
    "open_hdf5": _open_hdf5,
    "s3ecephys download": _download_command,
}


def _fails_fast_and_clearly(entry, endpoint, tmp_path, synthetic_dataset, capsys) -> None:
    started = time.monotonic()
    if entry is _download_command:
        entry(endpoint, tmp_path, synthetic_dataset)
        message = capsys.readouterr().err
    else:
        with pytest.raises(LocationError) as error:
            entry(endpoint, tmp_path, synthetic_dataset)
        assert isinstance(error.value, EndpointUnreachableError)
        message = str(error.value)
    took = time.monotonic() - started
    assert f"cannot reach the S3 endpoint {endpoint} " in message
    assert "S3ECEPHYS_ENDPOINT_URL" in message and "policy='local'" in message
    assert took < BOUND


@pytest.mark.parametrize("entry", ENTRY_POINTS.values(), ids=ENTRY_POINTS.keys())
def test_a_closed_port_is_named_at_once(entry, closed_endpoint, tmp_path, synthetic_dataset,
                                        capsys):
    # Refused: EndpointUnreachableError at the first refusal (retries would end in
    # ReadFailedError, which says nothing of the endpoint).
    _fails_fast_and_clearly(entry, closed_endpoint, tmp_path, synthetic_dataset, capsys)


@pytest.mark.parametrize("entry", ENTRY_POINTS.values(), ids=ENTRY_POINTS.keys())
@pytest.mark.parametrize("kind", ["blackholed", "silent"])
def test_an_endpoint_that_does_not_answer_is_named_within_its_timeouts(
    entry, kind, request, short_limits, tmp_path, synthetic_dataset, capsys
):
    endpoint = request.getfixturevalue(f"{kind}_endpoint")
    # One connect (1 s) or one first-byte wait (1 + 1 s); six attempts would exceed the bound.
    _fails_fast_and_clearly(entry, endpoint, tmp_path, synthetic_dataset, capsys)


@pytest.mark.slow
@pytest.mark.parametrize("entry", [_session_table, _open_hdf5], ids=["tables", "open_hdf5"])
@pytest.mark.parametrize("kind", ["blackholed", "silent"])
def test_the_default_limits_name_an_unanswering_endpoint_within_ten_seconds(
    entry, kind, request, tmp_path, synthetic_dataset, capsys
):
    endpoint = request.getfixturevalue(f"{kind}_endpoint")
    _fails_fast_and_clearly(entry, endpoint, tmp_path, synthetic_dataset, capsys)
