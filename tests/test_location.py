"""Where data comes from: defaults, URL forms, environment overrides, checks of local folders."""

from __future__ import annotations

import os
import pickle
import re
import socket

import pytest

from s3ecephys.storage.location import DEFAULT_URL, DataLocation, LocationError

ANONYMOUS_IN_REGION = {"anon": True, "client_kwargs": {"region_name": "us-west-2"}}


def test_by_default_the_public_bucket_is_read_anonymously_in_its_region():
    location = DataLocation.resolve()

    assert DEFAULT_URL == "s3://allen-brain-observatory/visual-coding-neuropixels/ecephys-cache/"
    assert location.url == DEFAULT_URL
    assert location.protocol == "s3"
    assert location.storage_options == ANONYMOUS_IN_REGION


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("s3://bucket/some/prefix", "s3://bucket/some/prefix/"),
        ("s3://bucket/some/prefix/", "s3://bucket/some/prefix/"),
        ("s3://bucket", "s3://bucket/"),
        ("S3://bucket/prefix", "s3://bucket/prefix/"),
        ("s3://bucket/prefix/manifest.json", "s3://bucket/prefix/"),
    ],
)
def test_s3_urls_are_normalised_to_a_prefix_with_one_trailing_slash(given, expected):
    assert DataLocation.resolve(given).url == expected


def test_local_folders_become_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    assert DataLocation.resolve("cache").url == str(tmp_path / "cache")
    assert DataLocation.resolve(tmp_path / "cache").url == str(tmp_path / "cache")
    assert DataLocation.resolve(f"file://{tmp_path}/cache").url == str(tmp_path / "cache")
    assert DataLocation.resolve(tmp_path / "cache" / "manifest.json").url == str(tmp_path / "cache")
    assert DataLocation.resolve("~").url == os.path.expanduser("~")


def test_a_local_folder_uses_the_local_filesystem_with_the_given_options(tmp_path):
    location = DataLocation.resolve(tmp_path, {"auto_mkdir": False})

    assert location.protocol == "file"
    assert location.storage_options == {"auto_mkdir": False}
    assert location.filesystem().protocol[0] == "file"


@pytest.mark.parametrize("url", ["https://example.org/data/", "gs://bucket/prefix/", "s3:///x"])
def test_urls_that_name_no_s3_bucket_or_folder_are_refused(url):
    with pytest.raises(ValueError, match="s3://bucket/prefix/"):
        DataLocation.resolve(url)


def test_keys_are_joined_below_the_root(tmp_path):
    remote = DataLocation.resolve("s3://bucket/cache")
    local = DataLocation.resolve(tmp_path)

    assert remote.join("session_1/session_1.nwb") == "s3://bucket/cache/session_1/session_1.nwb"
    assert remote.join("/sessions.csv") == "s3://bucket/cache/sessions.csv"
    assert local.join("session_1/session_1.nwb") == str(tmp_path / "session_1" / "session_1.nwb")
    assert local.join("") == str(tmp_path)


def test_the_dataset_url_can_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("S3ECEPHYS_URL", "s3://mirror/cache")

    assert DataLocation.resolve().url == "s3://mirror/cache/"
    assert DataLocation.resolve("s3://explicit/cache/").url == "s3://explicit/cache/"


def test_a_bad_dataset_url_in_the_environment_is_named_in_the_error(monkeypatch):
    monkeypatch.setenv("S3ECEPHYS_URL", "http://mirror/cache")

    with pytest.raises(ValueError, match="S3ECEPHYS_URL: unsupported URL 'http://mirror/cache'"):
        DataLocation.resolve()


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:3"}, "http://127.0.0.1:3"),
        (
            {"AWS_ENDPOINT_URL": "http://127.0.0.1:3", "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:2"},
            "http://127.0.0.1:2",
        ),
        (
            {
                "AWS_ENDPOINT_URL": "http://127.0.0.1:3",
                "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:2",
                "S3ECEPHYS_ENDPOINT_URL": "http://127.0.0.1:1/",
            },
            "http://127.0.0.1:1",
        ),
    ],
)
def test_the_endpoint_comes_from_the_first_variable_set(monkeypatch, variables, expected):
    for name, value in variables.items():
        monkeypatch.setenv(name, value)

    options = DataLocation.resolve().storage_options

    assert options == {**ANONYMOUS_IN_REGION, "endpoint_url": expected}


def test_aws_endpoint_variables_can_be_ignored_as_botocore_allows(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:3")
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")

    assert "endpoint_url" not in DataLocation.resolve().storage_options


def test_an_endpoint_in_the_arguments_beats_the_environment(monkeypatch):
    monkeypatch.setenv("S3ECEPHYS_ENDPOINT_URL", "http://127.0.0.1:1")

    top_level = DataLocation.resolve(storage_options={"endpoint_url": "http://127.0.0.1:9"})
    nested = DataLocation.resolve(
        storage_options={"client_kwargs": {"endpoint_url": "http://127.0.0.1:9"}}
    )

    assert top_level.storage_options["endpoint_url"] == "http://127.0.0.1:9"
    assert "endpoint_url" not in nested.storage_options
    assert nested.storage_options["client_kwargs"] == {
        "region_name": "us-west-2",
        "endpoint_url": "http://127.0.0.1:9",
    }


def test_an_endpoint_variable_that_is_not_a_url_is_named_in_the_error(monkeypatch):
    monkeypatch.setenv("S3ECEPHYS_ENDPOINT_URL", "127.0.0.1:9000")

    with pytest.raises(ValueError, match="S3ECEPHYS_ENDPOINT_URL='127.0.0.1:9000'"):
        DataLocation.resolve()


@pytest.mark.parametrize(
    "options",
    [
        {"endpoint_url": "127.0.0.1:9000"},
        {"endpoint_url": "ftp://127.0.0.1:9000"},
        {"client_kwargs": {"endpoint_url": "localhost:9000"}},
    ],
)
def test_an_endpoint_argument_that_is_not_a_url_is_named_in_the_error(options):
    from s3ecephys import open_hdf5

    given = options.get("endpoint_url") or options["client_kwargs"]["endpoint_url"]
    with pytest.raises(ValueError, match=re.escape(f"endpoint_url={given!r} is not an endpoint")):
        DataLocation.resolve("s3://bucket/prefix/", storage_options=options)
    with pytest.raises(ValueError, match="expected http"):
        open_hdf5("s3://bucket/key.nwb", storage_options=options)


def test_endpoint_variables_do_not_apply_to_local_folders(monkeypatch, tmp_path):
    monkeypatch.setenv("S3ECEPHYS_ENDPOINT_URL", "http://127.0.0.1:1")

    assert DataLocation.resolve(tmp_path).storage_options == {}


def test_storage_options_are_merged_over_the_defaults():
    location = DataLocation.resolve(
        storage_options={"client_kwargs": {"verify": False}, "default_block_size": 2**16}
    )

    assert location.storage_options == {
        "anon": True,
        "client_kwargs": {"region_name": "us-west-2", "verify": False},
        "default_block_size": 2**16,
    }


@pytest.mark.parametrize(
    "credentials", [{"profile": "lab"}, {"key": "AKIDEXAMPLE", "secret": "example-secret"}]
)
def test_credentials_turn_the_anonymous_default_off(credentials):
    options = DataLocation.resolve("s3://private-mirror/cache/", credentials).storage_options

    assert "anon" not in options
    assert options == {"client_kwargs": {"region_name": "us-west-2"}, **credentials}


def test_repr_hides_secrets():
    location = DataLocation.resolve(storage_options={"key": "AKIDEXAMPLE", "secret": "s3cr3t"})

    assert "AKIDEXAMPLE" in repr(location)
    assert "s3cr3t" not in repr(location)


def test_the_filesystem_is_created_once_per_location():
    location = DataLocation.resolve(storage_options={"endpoint_url": "http://127.0.0.1:1"})

    filesystem = location.filesystem()

    assert filesystem is location.filesystem()
    assert filesystem.anon is True
    assert filesystem.endpoint_url == "http://127.0.0.1:1"


def test_a_location_pickles_as_url_and_options_without_its_filesystem():
    location = DataLocation.resolve(storage_options={"endpoint_url": "http://127.0.0.1:1"})
    location.filesystem()

    copy = pickle.loads(pickle.dumps(location))

    assert copy == location
    assert copy._filesystem is None
    assert {location: "usable as a key"}[copy] == "usable as a key"


def test_a_pickled_location_keeps_its_options_whatever_the_receiving_environment(monkeypatch):
    payload = pickle.dumps(DataLocation.resolve())
    monkeypatch.setenv("S3ECEPHYS_ENDPOINT_URL", "http://127.0.0.1:1")

    assert pickle.loads(payload).storage_options == ANONYMOUS_IN_REGION


def test_check_names_a_missing_local_folder(tmp_path):
    location = DataLocation.resolve(tmp_path / "nowhere")

    with pytest.raises(
        LocationError, match=f"^the local folder {re.escape(str(tmp_path))}/nowhere does not exist"
    ):
        location.check()


def test_check_names_the_files_a_local_folder_lacks(tmp_path):
    with pytest.raises(
        LocationError,
        match=f"^{re.escape(str(tmp_path))} holds neither manifest.json nor sessions.csv",
    ):
        DataLocation.resolve(tmp_path).check()


@pytest.mark.parametrize("marker", ["manifest.json", "sessions.csv"])
def test_check_accepts_a_folder_with_a_manifest_or_a_session_table(tmp_path, marker):
    (tmp_path / marker).write_text("")

    DataLocation.resolve(tmp_path).check()


def test_location_errors_are_os_errors():
    assert issubclass(LocationError, OSError)


@pytest.mark.timeout(30)
def test_the_test_session_cannot_reach_aws():
    # conftest.py blocks AWS host names: the public bucket is out of reach, and check() says so.
    with pytest.raises(socket.gaierror, match="tests must not reach AWS"):
        socket.getaddrinfo("allen-brain-observatory.s3.us-west-2.amazonaws.com", 443)
    with pytest.raises(LocationError, match="^cannot reach the S3 endpoint AWS S3"):
        DataLocation.resolve().check()
