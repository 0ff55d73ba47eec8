"""What produced a result: the versions of the packages that can change its numbers.

A result recorded without them cannot be told apart from a regression when a rerun differs: every session installs
afresh, and a new release of a dependency can move a float (a rerun of an old commit in a new environment is the
only way to tell). Reports write these beside their numbers.
"""

from __future__ import annotations

import platform
from importlib import metadata

PACKAGES = ("torch", "lightning", "numpy", "webdataset", "torchmetrics", "jsonargparse")


def versions() -> dict[str, str]:
    """Python and each package of `PACKAGES` that is installed, with its version."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def versions_line() -> str:
    """`versions()` as one line: "python 3.11.2 · torch 2.14.1 · ..."."""
    return " · ".join(f"{name} {version}" for name, version in versions().items())
