"""Object references, as a reader of an indexed file sees them: the path of their target."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reference:
    """An HDF5 object reference, resolved to its target's path when the file was indexed.

    ``path`` is None for a null reference. ``File.__getitem__`` accepts a Reference, as h5py's
    ``File`` accepts its own references. Reference datasets have h5py's reference dtype
    (``h5py.check_ref_dtype`` answers this class), so code written for h5py recognises them.
    """

    path: str | None

    def __bool__(self) -> bool:
        return self.path is not None
