"""Where the data sets shipped in twinweave's package data are found."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def packaged_file(dataset: str, name: str, description: str) -> Path:
    """Path of file ``name`` of ``datasets/<dataset>`` in the installed package.

    Raises
    ------
    FileNotFoundError
        Naming the ``description`` of the data, the file and where it was expected.
    """
    resource = resources.files("twinweave") / "datasets" / dataset / name
    # Installed packages are directories on disk; a zipped install would need
    # resources.as_file, which hands out a temporary copy instead of a stable path.
    path = Path(str(resource))
    if not path.is_file():
        raise FileNotFoundError(
            f"{description} data file {name!r} not found at {path}; expected it in "
            f"twinweave's package data (datasets/{dataset})"
        )
    return path
