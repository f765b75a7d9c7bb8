"""Where the dataset is read from, decided in one place.

By default that is the public bucket, read anonymously in its region. A mirror, a local S3 (see
:mod:`s3ecephys.testing`) or a local folder (a download, or the bucket mounted on AWS) is chosen by
argument or by environment variable; every other module asks a :class:`DataLocation` for URLs and
filesystems instead of deciding for itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import fsspec

from s3ecephys.storage.limits import endpoint_health, split_limits

DEFAULT_BUCKET = "allen-brain-observatory"
DEFAULT_PREFIX = "visual-coding-neuropixels/ecephys-cache/"
DEFAULT_URL = f"s3://{DEFAULT_BUCKET}/{DEFAULT_PREFIX}"
DEFAULT_REGION = "us-west-2"

URL_VARIABLE = "S3ECEPHYS_URL"
# Searched in this order: ours first, then the standard AWS ones botocore itself honours.
ENDPOINT_VARIABLES = ("S3ECEPHYS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
_IGNORE_AWS_ENDPOINTS_VARIABLE = "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"

# A dataset folder holds at least one of these; manifest.json first, as AllenSDK looks for it.
MARKER_FILES = ("manifest.json", "sessions.csv")

# s3fs options that name credentials: when one is given, the user wants signed requests.
_CREDENTIAL_OPTIONS = ("key", "secret", "token", "username", "password", "profile", "session")
_SECRET_OPTIONS = ("secret", "token", "password")



class LocationError(OSError):
    """A data location cannot be used; the message says what was tried and what to do."""


class EndpointUnreachableError(LocationError, ConnectionError):
    """The S3 endpoint did not answer at all (no route, refused, or silent); the message names it
    and says what to do."""


def unreachable_message(endpoint: str, detail: str, target: str) -> str:
    """What to tell a user whose endpoint cannot be reached while ``target`` is read."""
    return (
        f"cannot reach the S3 endpoint {endpoint} ({detail}) to read {target}. Check the "
        f"network; for a local S3 or a mirror, check that it is running and that "
        f"{ENDPOINT_VARIABLES[0]} (or storage_options endpoint_url) names it; unset it to read "
        "the public bucket. Without a network, read a local copy: "
        "EcephysProjectCache(manifest='DIR/manifest.json', policy='local'), a folder filled "
        "beforehand by `s3ecephys download --cache DIR`."
    )


def endpoint_of(storage_options: Mapping[str, Any]) -> str:
    """The endpoint S3 requests with these s3fs options go to, as a user would recognise it."""
    client_kwargs = storage_options.get("client_kwargs", {})
    endpoint = storage_options.get("endpoint_url") or client_kwargs.get("endpoint_url")
    if endpoint:
        return endpoint
    region = client_kwargs.get("region_name", DEFAULT_REGION)
    return f"AWS S3 (https://s3.{region}.amazonaws.com)"


@dataclass(frozen=True)
class DataLocation:
    """A dataset root (``s3://bucket/prefix/`` or a local folder) and how to open it.

    Build one with :meth:`resolve`, which applies the defaults and the environment; the constructor
    takes its arguments as they are. Instances pickle as ``(url, storage_options)`` so they can be
    sent to other processes; the filesystem is created again there, on first use.
    """

    url: str
    storage_options: dict[str, Any] = field(default_factory=dict, hash=False)
    _filesystem: Any = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def resolve(
        cls,
        url: str | os.PathLike[str] | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> DataLocation:
        """The location to read from, with defaults and environment applied.

        ``url`` is ``s3://bucket/prefix/``, ``file://...`` or a local path (the folder holding
        manifest.json; a path to manifest.json itself means its folder). Without it,
        ``$S3ECEPHYS_URL`` or else the public bucket is used.

        For S3, ``storage_options`` (s3fs arguments) are merged over the defaults: anonymous,
        region us-west-2 and, when the options name no endpoint, the first of
        ``$S3ECEPHYS_ENDPOINT_URL``, ``$AWS_ENDPOINT_URL_S3``, ``$AWS_ENDPOINT_URL``. Options that
        name credentials (key, secret, token, profile, ...) turn the anonymous default off.
        """
        if url is None and os.environ.get(URL_VARIABLE):
            try:
                url = _normalise_url(os.environ[URL_VARIABLE])
            except ValueError as error:
                raise ValueError(f"{URL_VARIABLE}: {error}") from None
        else:
            url = _normalise_url(os.fspath(DEFAULT_URL if url is None else url))
        options = dict(storage_options or {})
        if url.startswith("s3://"):
            options = s3_storage_options(options)
        return cls(url, options)

    @property
    def protocol(self) -> str:
        """``"s3"`` or ``"file"``."""
        return "s3" if self.url.startswith("s3://") else "file"

    def filesystem(self) -> fsspec.AbstractFileSystem:
        """The fsspec filesystem for this location, created on first use."""
        if self._filesystem is None:
            _, options = split_limits(self.storage_options)
            filesystem = fsspec.filesystem(self.protocol, **options)
            # Frozen for users; the cache is the one field set after construction.
            object.__setattr__(self, "_filesystem", filesystem)
        return self._filesystem

    def join(self, key: str) -> str:
        """The URL (S3) or path (local) of ``key``, a ``/``-separated path below the root."""
        parts = [part for part in key.split("/") if part]
        if self.protocol == "s3":
            return self.url + "/".join(parts)
        return os.path.join(self.url, *parts)

    def check(self) -> None:
        """Make sure the dataset can be read here; raise :class:`LocationError` saying why not.

        Looks for manifest.json or sessions.csv at the root. An endpoint that does not answer is
        reported within the connect and first-byte timeouts (see :mod:`s3ecephys.storage.limits`),
        with one attempt: this is a diagnosis, not a read that must succeed.
        """
        if self.protocol == "file":
            self._check_folder()
        else:
            self._check_bucket()

    def __reduce__(self) -> tuple[type[DataLocation], tuple[str, dict[str, Any]]]:
        # An fsspec filesystem holds an event loop and connections: never ship it.
        return (type(self), (self.url, self.storage_options))

    def __repr__(self) -> str:
        options = {
            name: "***" if name in _SECRET_OPTIONS else value
            for name, value in self.storage_options.items()
        }
        return f"{type(self).__name__}(url={self.url!r}, storage_options={options!r})"

    def _check_folder(self) -> None:
        if not os.path.isdir(self.url):
            raise LocationError(
                f"the local folder {self.url} does not exist; pass the folder that holds "
                "manifest.json (the ecephys-cache folder) or an s3:// URL"
            )
        if not any(os.path.isfile(self.join(name)) for name in MARKER_FILES):
            raise LocationError(
                f"{self.url} holds neither {' nor '.join(MARKER_FILES)}; pass the folder that "
                "holds them (the ecephys-cache folder)"
            )

    def _check_bucket(self) -> None:
        import s3fs

        bucket, _, prefix = self.url.removeprefix("s3://").partition("/")
        filesystem = s3fs.S3FileSystem(**self._fail_fast_options())
        # s3fs retries timeouts itself, on top of botocore: once is enough for a diagnosis.
        filesystem.retries = 1
        for name in MARKER_FILES:
            if self._found(filesystem, "head_object", Bucket=bucket, Key=prefix + name):
                return
        if not self._found(filesystem, "head_bucket", Bucket=bucket):
            raise LocationError(
                f"the bucket {bucket!r} does not exist at {self._endpoint()}; check the URL "
                f"{self.url} and the endpoint"
            )
        raise LocationError(
            f"{self.url} holds neither {' nor '.join(MARKER_FILES)} (looked for "
            f"{', '.join(prefix + name for name in MARKER_FILES)} in bucket {bucket!r} at "
            f"{self._endpoint()}); the URL must name the ecephys-cache prefix, e.g. {DEFAULT_URL}"
        )

    def _found(self, filesystem: Any, method: str, **arguments: str) -> bool:
        """Whether a HEAD request finds its target; any answer but yes or no is a LocationError."""
        from botocore.exceptions import BotoCoreError, HTTPClientError
        from botocore.exceptions import ConnectionError as EndpointUnreachable

        endpoint = self._endpoint()
        health = endpoint_health(endpoint)
        if health.known_unreachable():
            raise EndpointUnreachableError(
                unreachable_message(endpoint, "it did not answer moments ago", self.url)
            )
        try:
            filesystem.call_s3(method, **arguments)
        except FileNotFoundError:
            health.saw_answer()
            return False
        except PermissionError as error:
            health.saw_answer()
            raise LocationError(
                f"access to {self.url} at {endpoint} was denied ({error}). The public bucket is "
                "read anonymously (anon=True); a private mirror needs credentials in "
                "storage_options. S3 also answers 'access denied' for a missing key when listing "
                "is not allowed, so check the prefix too."
            ) from error
        except (EndpointUnreachable, HTTPClientError) as error:
            health.saw_no_answer()
            raise EndpointUnreachableError(
                unreachable_message(endpoint, str(error), self.url)
            ) from error
        except (BotoCoreError, OSError) as error:
            raise LocationError(f"cannot read {self.url} at {endpoint}: {error}") from error
        health.saw_answer()
        return True

    def _endpoint(self) -> str:
        return endpoint_of(self.storage_options)

    def _fail_fast_options(self) -> dict[str, Any]:
        limits, options = split_limits(self.storage_options)
        # A private instance: the shared, cached one must keep the user's settings.
        options["skip_instance_cache"] = True
        options["config_kwargs"] = {
            **options.get("config_kwargs", {}),
            "connect_timeout": limits.connect_timeout,
            "read_timeout": limits.first_byte_timeout,
            "retries": {"total_max_attempts": 1},
        }
        return options


def _normalise_url(text: str) -> str:
    """``s3://bucket/prefix/`` with one trailing slash, or an absolute local folder path."""
    scheme, separator, rest = text.partition("://")
    if not separator:
        return _local_folder(text)
    scheme = scheme.lower()
    if scheme == "file":
        return _local_folder(url2pathname(urlsplit(text).path))
    if scheme != "s3":
        raise ValueError(
            f"unsupported URL {text!r}: use s3://bucket/prefix/, file:///path or a local path"
        )
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {text!r}: use s3://bucket/prefix/")
    prefix = prefix.rstrip("/")
    if prefix.rpartition("/")[2] == MARKER_FILES[0]:
        prefix = prefix.rpartition("/")[0]
    return f"s3://{bucket}/" + (f"{prefix}/" if prefix else "")


def _local_folder(path: str) -> str:
    # abspath, not resolve(): a mounted bucket's path should stay as the user wrote it.
    path = os.path.abspath(os.path.expanduser(path))
    if os.path.basename(path) == MARKER_FILES[0]:
        path = os.path.dirname(path)
    return path


def s3_storage_options(user: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """s3fs options: the user's merged over the defaults (anonymous, us-west-2, env endpoint)."""
    user = dict(user or {})
    defaults: dict[str, Any] = {"anon": True, "client_kwargs": {"region_name": DEFAULT_REGION}}
    if any(name in user for name in _CREDENTIAL_OPTIONS):
        del defaults["anon"]
    names_endpoint = "endpoint_url" in user or "endpoint_url" in user.get("client_kwargs", {})
    endpoint = None if names_endpoint else _endpoint_from_environment()
    if endpoint:
        defaults["endpoint_url"] = endpoint
    merged = {**defaults, **user}
    # One level deeper here, so that e.g. a custom CA bundle keeps the default region.
    merged["client_kwargs"] = {**defaults["client_kwargs"], **user.get("client_kwargs", {})}
    for given in (merged.get("endpoint_url"), merged["client_kwargs"].get("endpoint_url")):
        if given is not None and not str(given).startswith(("http://", "https://")):
            raise ValueError(
                f"endpoint_url={given!r} is not an endpoint URL: expected http(s)://host[:port]"
            )
    return merged


def _endpoint_from_environment() -> str | None:
    ignore_aws = os.environ.get(_IGNORE_AWS_ENDPOINTS_VARIABLE, "").lower() == "true"
    for variable in ENDPOINT_VARIABLES:
        if ignore_aws and variable.startswith("AWS_"):
            continue
        value = os.environ.get(variable, "").strip()
        if not value:
            continue
        if not value.startswith(("http://", "https://")):
            raise ValueError(
                f"{variable}={value!r} is not an endpoint URL: expected http(s)://host[:port]"
            )
        return value.rstrip("/")
    return None
