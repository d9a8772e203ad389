"""Lazy exports for the package ``__init__`` modules (PEP 562).

A process that needs one corner of twinweave should not pay for the rest: a Flower
ClientApp process, started for every message, needs the fleet model's local step, not
pandas, pint or the wind domain. A package lists its exports twice, for two readers:
as imports under ``if TYPE_CHECKING:`` (type checkers, people) and as a ``{module:
names}`` table for :func:`lazy_exports` (the interpreter, which then needs no source
files: bytecode-only and zipped installs work). A test checks that the two agree.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection, Mapping
from typing import Any


def lazy_exports(
    package: str,
    exports: Mapping[str, Collection[str]],
    *,
    subpackages: Collection[str] = (),
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module ``__getattr__`` and ``__dir__`` for the package ``package``.

    Parameters
    ----------
    package
        The package's ``__name__``.
    exports
        For each module, the names the package exports from it.
    subpackages
        Subpackages (and public modules) that are attributes of the package, imported
        when first used, as ``twinweave.core`` after ``import twinweave``.
    """
    origin = {name: module for module, names in exports.items() for name in names}
    children = frozenset(subpackages)

    def __getattr__(name: str) -> Any:
        if name in children:
            return importlib.import_module(f"{package}.{name}")
        module = origin.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        # Cached in the package, so the next lookup does not come here.
        vars(importlib.import_module(package))[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(importlib.import_module(package))) | set(origin) | children)

    return __getattr__, __dir__
