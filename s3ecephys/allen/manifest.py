"""The AllenSDK ``EcephysProjectCache`` folder layout (``manifest.json``, version 0.3.0).

AllenSDK refuses a cache whose manifest differs in version, and people mount or copy caches between
machines, so the text written here is exactly what AllenSDK 2.16.2 writes and the paths are resolved
against the folder that holds the manifest (a cache can be moved).
"""

from __future__ import annotations

import json
from pathlib import Path

MANIFEST_VERSION = "0.3.0"
# AllenSDK 0.2.1 manifests name the same paths; they are read, never written.
READABLE_MANIFEST_VERSIONS = ("0.2.1", MANIFEST_VERSION)
MANIFEST_FILENAME = "manifest.json"

# (key, type, spec, parent_key) in AllenSDK's order; the order is part of the file's text.
_ENTRIES: tuple[tuple[str, str, str, str | None], ...] = (
    ("BASEDIR", "dir", ".", None),
    ("sessions", "file", "sessions.csv", "BASEDIR"),
    ("probes", "file", "probes.csv", "BASEDIR"),
    ("channels", "file", "channels.csv", "BASEDIR"),
    ("units", "file", "units.csv", "BASEDIR"),
    ("session_data", "dir", "session_%d", "BASEDIR"),
    ("session_nwb", "file", "session_%d.nwb", "session_data"),
    ("session_analysis_metrics", "file", "session_%d_analysis_metrics.csv", "session_data"),
    ("probe_lfp_nwb", "file", "probe_%d_lfp.nwb", "session_data"),
    ("movie_dir", "dir", "natural_movie_templates", "BASEDIR"),
    ("typewise_analysis_metrics", "file", "%s_analysis_metrics.csv", "BASEDIR"),
    ("natural_movie", "file", "natural_movie_%d.h5", "movie_dir"),
    ("natural_scene_dir", "dir", "natural_scene_templates", "BASEDIR"),
    ("natural_scene", "file", "natural_scene_%d.tiff", "natural_scene_dir"),
)


def manifest_document() -> dict:
    """The manifest as AllenSDK writes it, as a JSON-ready dict."""
    entries: list[dict] = [{"type": "manifest_version", "value": MANIFEST_VERSION}]
    for key, kind, spec, parent in _ENTRIES:
        entry = {"key": key, "type": kind, "spec": spec}
        if parent is not None:
            entry["parent_key"] = parent
        entries.append(entry)
    return {"manifest": entries}


def manifest_text() -> str:
    """The exact text of ``manifest.json`` (indent 2, no trailing newline, like ``json.dump``)."""
    return json.dumps(manifest_document(), indent=2)


def write_manifest(directory: str | Path) -> Path:
    """Write ``manifest.json`` into ``directory`` and return its path."""
    path = Path(directory) / MANIFEST_FILENAME
    path.write_text(manifest_text())
    return path


class ManifestError(ValueError):
    """A manifest.json that AllenSDK would not accept either."""


def check_manifest(path: str | Path) -> Path:
    """Read an existing ``manifest.json`` (never writing), check its version; return its folder."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
        versions = [
            entry.get("value")
            for entry in document["manifest"]
            if entry.get("type") == "manifest_version"
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ManifestError(f"{path} is not an AllenSDK cache manifest: {error}") from error
    if not versions or versions[0] not in READABLE_MANIFEST_VERSIONS:
        found = versions[0] if versions else "none"
        raise ManifestError(
            f"{path} has manifest version {found}; this dataset's caches use "
            f"{' or '.join(READABLE_MANIFEST_VERSIONS)}. Point at the ecephys-cache folder's "
            "manifest.json, or at a new folder to start a cache there"
        )
    return path.parent


def _spec_chain(key: str) -> list[str]:
    by_key = {e[0]: e for e in _ENTRIES}
    chain = []
    while key != "BASEDIR":
        _, _, spec, parent = by_key[key]
        chain.append(spec)
        key = parent
    return chain[::-1]


def _relative(key: str, *args: int | str) -> str:
    # AllenSDK fills every '%' in the chain from one argument tuple, outermost first.
    parts, remaining = [], list(args)
    for spec in _spec_chain(key):
        n = spec.count("%")
        parts.append(spec % tuple(remaining[:n]) if n else spec)
        remaining = remaining[n:]
    if remaining:
        raise ValueError(f"too many arguments for manifest key {key!r}: {args!r}")
    return "/".join(parts)


def sessions_csv() -> str:
    return _relative("sessions")


def probes_csv() -> str:
    return _relative("probes")


def channels_csv() -> str:
    return _relative("channels")


def units_csv() -> str:
    return _relative("units")


def session_nwb(session_id: int) -> str:
    """Relative path of a session's NWB file, e.g. ``session_715093703/session_715093703.nwb``."""
    return _relative("session_nwb", int(session_id), int(session_id))


def probe_lfp_nwb(session_id: int, probe_id: int) -> str:
    """Relative path of a probe's LFP NWB file inside its session folder."""
    return _relative("probe_lfp_nwb", int(session_id), int(probe_id))


def session_analysis_metrics(session_id: int) -> str:
    return _relative("session_analysis_metrics", int(session_id), int(session_id))


def typewise_analysis_metrics(session_type: str) -> str:
    """Relative path of ``<session_type>_analysis_metrics.csv``."""
    return _relative("typewise_analysis_metrics", session_type)
