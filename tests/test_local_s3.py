"""The local S3 serves objects as the public bucket does: anonymously, with exact byte ranges."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from s3ecephys.storage.location import DataLocation, LocationError
from s3ecephys.testing import LocalS3

PREFIX = "tests/local-s3/"
PAYLOAD = bytes(range(256)) * 64  # 16 KiB, every byte value at a known offset


@pytest.fixture(scope="module")
def key(local_s3: LocalS3) -> str:
    key = PREFIX + "payload.bin"
    local_s3.put_object(key, PAYLOAD)
    return key


@pytest.fixture(scope="module")
def unsigned(local_s3: LocalS3):
    """A boto3 client that signs nothing, as for the real public bucket (--no-sign-request)."""
    return boto3.client(
        "s3",
        endpoint_url=local_s3.endpoint_url,
        region_name="us-west-2",
        config=Config(signature_version=UNSIGNED),
    )


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections: bound (nobody else takes it), not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_anonymous_requests_list_head_and_get(local_s3, unsigned, key):
    listed = unsigned.list_objects_v2(Bucket=local_s3.bucket, Prefix=PREFIX)
    head = unsigned.head_object(Bucket=local_s3.bucket, Key=key)
    body = unsigned.get_object(Bucket=local_s3.bucket, Key=key)["Body"].read()

    assert [item["Key"] for item in listed["Contents"]] == [key]
    assert head["ContentLength"] == len(PAYLOAD)
    assert head["ETag"] == listed["Contents"][0]["ETag"]
    assert body == PAYLOAD


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=1000-1099", 1000, 1099),
        ("bytes=16000-", 16000, len(PAYLOAD) - 1),
        ("bytes=-10", len(PAYLOAD) - 10, len(PAYLOAD) - 1),
        ("bytes=16380-99999", 16380, len(PAYLOAD) - 1),
    ],
)
def test_an_anonymous_ranged_get_returns_exactly_those_bytes(
    local_s3, unsigned, key, header, first, last
):
    response = unsigned.get_object(Bucket=local_s3.bucket, Key=key, Range=header)

    assert response["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert response["ContentRange"] == f"bytes {first}-{last}/{len(PAYLOAD)}"
    assert response["ContentLength"] == last - first + 1
    assert response["Body"].read() == PAYLOAD[first : last + 1]


def test_ranged_gets_answer_as_moto_itself_does(local_s3, unsigned, key):
    # A response-header override is not a plain GET, so moto answers it itself, by its
    # whole-object path; the fast path serving plain ranged GETs must agree with it.
    fast = unsigned.get_object(Bucket=local_s3.bucket, Key=key, Range="bytes=10-20")
    by_moto = unsigned.get_object(
        Bucket=local_s3.bucket, Key=key, Range="bytes=10-20", ResponseCacheControl="no-cache"
    )

    compared = ("ContentRange", "ContentLength", "ETag", "LastModified", "ContentType", "VersionId")
    assert {name: fast[name] for name in compared} == {name: by_moto[name] for name in compared}
    assert fast["Body"].read() == by_moto["Body"].read()


def test_a_range_beyond_the_end_and_a_missing_key_are_errors(local_s3, unsigned, key):
    with pytest.raises(ClientError, match="InvalidRange"):
        unsigned.get_object(Bucket=local_s3.bucket, Key=key, Range=f"bytes={len(PAYLOAD)}-")
    with pytest.raises(ClientError, match="NoSuchKey"):
        unsigned.get_object(Bucket=local_s3.bucket, Key=PREFIX + "missing", Range="bytes=0-1")


def test_a_replaced_object_keeps_its_old_version_as_in_the_versioned_real_bucket(
    local_s3, unsigned
):
    key = PREFIX + "replaced.bin"
    local_s3.put_object(key, b"first version")
    old = unsigned.head_object(Bucket=local_s3.bucket, Key=key)["VersionId"]
    local_s3.put_object(key, b"second version")

    latest = unsigned.get_object(Bucket=local_s3.bucket, Key=key, Range="bytes=0-5")
    pinned = unsigned.get_object(Bucket=local_s3.bucket, Key=key, Range="bytes=0-5", VersionId=old)

    assert latest["Body"].read() == b"second"
    assert pinned["Body"].read() == b"first "


def test_s3fs_reads_anonymously_with_the_servers_storage_options(local_s3, key):
    location = DataLocation.resolve(local_s3.url(PREFIX), local_s3.storage_options)
    filesystem = location.filesystem()
    path = location.join("payload.bin")

    info = filesystem.info(path)
    with filesystem.open(path, "rb", block_size=1024) as handle:
        handle.seek(5000)
        window = handle.read(100)

    assert filesystem.anon is True
    assert info["size"] == len(PAYLOAD)
    assert info["ETag"] == local_s3.client.head_object(Bucket=local_s3.bucket, Key=key)["ETag"]
    assert filesystem.cat_file(path, start=100, end=200) == PAYLOAD[100:200]
    assert window == PAYLOAD[5000:5100]


def test_other_processes_reach_the_server_over_tcp(local_s3, key):
    script = (
        "import json, sys, s3fs\n"
        "options, path = json.loads(sys.argv[1]), sys.argv[2]\n"
        "sys.stdout.write(s3fs.S3FileSystem(**options).cat_file(path, start=0, end=4).hex())\n"
    )
    command = [
        sys.executable,
        "-c",
        script,
        json.dumps(local_s3.storage_options),
        local_s3.url(key),
    ]

    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)

    assert output.stdout == PAYLOAD[:4].hex()


def test_upload_directory_keeps_relative_paths_below_the_prefix(local_s3, tmp_path):
    (tmp_path / "session_1").mkdir()
    (tmp_path / "manifest.json").write_text("{}")
    (tmp_path / "session_1" / "session_1.nwb").write_bytes(b"nwb")
    # Above boto3's 8 MiB threshold: sent in parts, so the ETag is a multipart one.
    (tmp_path / "session_1" / "probe_2_lfp.nwb").write_bytes(b"\x01" * (9 * 2**20))

    count = local_s3.upload_directory(tmp_path, prefix="tests/upload")
    location = local_s3.location("tests/upload/")
    filesystem = location.filesystem()

    assert count == 3
    assert sorted(filesystem.find(location.url)) == [
        "allen-brain-observatory/tests/upload/manifest.json",
        "allen-brain-observatory/tests/upload/session_1/probe_2_lfp.nwb",
        "allen-brain-observatory/tests/upload/session_1/session_1.nwb",
    ]
    assert filesystem.cat_file(location.join("session_1/session_1.nwb")) == b"nwb"
    assert filesystem.info(location.join("session_1/probe_2_lfp.nwb"))["ETag"].endswith('-2"')
    location.check()


def test_upload_directory_refuses_a_missing_folder(local_s3, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        local_s3.upload_directory(tmp_path / "missing")


def test_the_endpoint_can_be_given_by_environment_as_for_serve_local(local_s3, monkeypatch, key):
    monkeypatch.setenv("S3ECEPHYS_ENDPOINT_URL", local_s3.endpoint_url)

    location = DataLocation.resolve(local_s3.url(PREFIX))

    assert location.filesystem().cat_file(location.join("payload.bin")) == PAYLOAD


@pytest.mark.timeout(20)
def test_check_names_an_unreachable_endpoint_and_the_variable_to_set(closed_port):
    endpoint = f"http://127.0.0.1:{closed_port}"
    location = DataLocation.resolve(storage_options={"endpoint_url": endpoint})

    with pytest.raises(LocationError) as error:
        location.check()

    assert str(error.value).startswith(f"cannot reach the S3 endpoint {endpoint} ")
    assert "S3ECEPHYS_ENDPOINT_URL" in str(error.value)


def test_check_names_a_missing_bucket(local_s3):
    location = DataLocation.resolve("s3://no-such-bucket/cache/", local_s3.storage_options)

    with pytest.raises(
        LocationError, match="^the bucket 'no-such-bucket' does not exist at http://127.0.0.1:"
    ):
        location.check()


def test_check_names_the_files_a_prefix_lacks(local_s3):
    with pytest.raises(LocationError) as error:
        local_s3.location("tests/no-dataset-here/").check()

    message = str(error.value)
    assert message.startswith("s3://allen-brain-observatory/tests/no-dataset-here/ holds neither")
    assert "tests/no-dataset-here/manifest.json, tests/no-dataset-here/sessions.csv" in message


def test_check_explains_a_denied_access(local_s3):
    local_s3.client.create_bucket(
        Bucket="private-mirror", CreateBucketConfiguration={"LocationConstraint": "us-west-2"}
    )
    local_s3.client.put_object(Bucket="private-mirror", Key="cache/manifest.json", Body=b"{}")
    location = DataLocation.resolve("s3://private-mirror/cache/", local_s3.storage_options)

    with pytest.raises(
        LocationError, match="^access to s3://private-mirror/cache/ at .* was denied.*anonymously"
    ):
        location.check()


def test_check_accepts_a_prefix_with_a_manifest(local_s3):
    local_s3.put_object("tests/cache/manifest.json", b"{}")

    local_s3.location("tests/cache/").check()


def test_two_servers_run_at_once_on_free_ports_each_with_its_own_objects():
    with LocalS3() as first, LocalS3() as second:
        first.put_object("only-here", b"1")

        assert first.endpoint_url != second.endpoint_url
        assert first.location("").filesystem().exists(first.url("only-here"))
        assert not second.location("").filesystem().exists(second.url("only-here"))


def test_stop_frees_the_port_and_can_be_called_again():
    server = LocalS3().start()
    port = int(server.endpoint_url.rsplit(":", 1)[1])
    server.stop()
    server.stop()

    with LocalS3(port=port) as again:
        assert again.endpoint_url == f"http://127.0.0.1:{port}"
    with pytest.raises(RuntimeError, match="not running"):
        server.endpoint_url  # noqa: B018


def test_a_port_in_use_is_reported():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            LocalS3(port=port).start()
