"""Read-only attributes of an indexed group or dataset, decoded from the index on first use."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from s3ecephys.hdf5.values import Encoded, decode_value


class Attributes(Mapping[str, Any]):
    """Like h5py's ``AttributeManager`` for reading: numeric values as numpy scalars or arrays,
    strings as ``str`` (fixed-length ones too), string arrays as object arrays of ``str``, object
    references as :class:`~s3ecephys.hdf5.values.Reference`, empty attributes as None."""

    def __init__(self, encoded: Mapping[str, Encoded]):
        self._encoded = encoded
        self._decoded: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._decoded:
            self._decoded[name] = decode_value(self._encoded[name])
        return self._decoded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._encoded)

    def __len__(self) -> int:
        return len(self._encoded)

    def __contains__(self, name: object) -> bool:
        return name in self._encoded

    def __repr__(self) -> str:
        return f"<Attributes {list(self._encoded)}>"
