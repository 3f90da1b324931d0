"""The package version: CMake's ``project(lutmul VERSION ...)``, the one source of it.

scikit-build-core writes it into the installed metadata (pyproject.toml's regex provider);
the C++ core carries the same number (``_core.__version__``) for a build without metadata.
"""

from __future__ import annotations

from importlib import metadata

from . import _core

try:
    __version__ = metadata.version("lutmul")
except metadata.PackageNotFoundError:  # imported from a build tree, not installed
    __version__ = _core.__version__
