"""Read-only attributes that the Python classes pass through from their C++ object."""

from __future__ import annotations


def core_property(name: str, doc: str = "") -> property:
    """A read-only property returning ``self._core.<name>``."""
    return property(lambda self: getattr(self._core, name), doc=doc or f"The C++ object's ``{name}``.")
