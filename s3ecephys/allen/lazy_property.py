"""``LazyProperty``: a session attribute read through ``session.api`` once, when first used.

AllenSDK's session makes its tables this way (``LazyPropertyMixin.LazyProperty``) and the name is
part of the session's public surface (``dir(session)``), so s3ecephys keeps it with AllenSDK's
arguments: the api method, functions applied to its result in turn, whether the attribute may be
assigned, and arguments for the method. AllenSDK builds one per session from a bound method; here
it is declared once on the class and names the method, and the value is kept on each session.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


class LazyProperty:
    """``name = LazyProperty("get_x", wrappers=(f,), settable=False, *args, **kwargs)`` makes
    ``session.name`` call ``session.api.get_x(*args, **kwargs)`` once, pass the result through
    each wrapper, and keep it; assigning it raises AttributeError unless ``settable``."""

    def __init__(
        self,
        api_method: str,
        wrappers: Sequence[Callable[[Any], Any]] = (),
        settable: bool = False,
        *args: Any,
        **kwargs: Any,
    ):
        self.api_method = api_method
        self.wrappers = tuple(wrappers)
        self.settable = settable
        self.args = args
        self.kwargs = kwargs
        self.name = api_method

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        kept = instance.__dict__
        if self.name not in kept:
            value = getattr(instance.api, self.api_method)(*self.args, **self.kwargs)
            for wrap in self.wrappers:
                value = wrap(value)
            kept[self.name] = value
        return kept[self.name]

    def __set__(self, instance: Any, value: Any) -> None:
        if not self.settable:
            raise AttributeError(f"{self.name} is read from the session file and cannot be set")
        instance.__dict__[self.name] = value
