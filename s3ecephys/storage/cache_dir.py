"""Where s3ecephys keeps what it learns about remote files (indexes, small tables) by default."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_DIR_VARIABLE = "S3ECEPHYS_CACHE_DIR"


def user_cache_dir() -> Path:
    """``$S3ECEPHYS_CACHE_DIR``, else ``$XDG_CACHE_HOME/s3ecephys``, else ``~/.cache/s3ecephys``."""
    if os.environ.get(CACHE_DIR_VARIABLE):
        return Path(os.environ[CACHE_DIR_VARIABLE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "s3ecephys"
