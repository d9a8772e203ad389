"""Lazy exports for the package ``__init__`` modules (PEP 562).

A process that needs one corner of twinweave should not pay for the rest: a Flower
ClientApp process, started for every message, needs the fleet model's local step, not
pandas, pint or the wind domain. Each package ``__init__`` lists its exports once, as
imports under ``if TYPE_CHECKING:`` (what type checkers and readers see); this module
reads that block and imports a name's module when the name is first used.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any


def lazy_exports(
    package: str, init_file: str
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module ``__getattr__`` and ``__dir__`` for the package ``package``.

    Parameters
    ----------
    package
        The package's ``__name__``.
    init_file
        The package's ``__file__``, whose ``if TYPE_CHECKING:`` block of ``from module
        import name`` statements maps each exported name to its module.
    """
    origin = _exported_names(Path(init_file))

    def __getattr__(name: str) -> Any:
        module = origin.get(name)
        if module is None:
            # A subpackage (``twinweave.core``) is an attribute once imported.
            try:
                return importlib.import_module(f"{package}.{name}")
            except ModuleNotFoundError as error:
                if error.name != f"{package}.{name}":
                    raise
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module), name)
        # Cached in the package, so the next lookup does not come here.
        globals_of(package)[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(globals_of(package)) | set(origin))

    return __getattr__, __dir__


def globals_of(package: str) -> dict[str, Any]:
    """The namespace of the (already imported) module ``package``."""
    return vars(importlib.import_module(package))


def _exported_names(init_file: Path) -> dict[str, str]:
    """``{name: module}`` from the ``if TYPE_CHECKING:`` block of ``init_file``."""
    tree = ast.parse(init_file.read_text(encoding="utf-8"))
    origin: dict[str, str] = {}
    for node in tree.body:
        if not (isinstance(node, ast.If) and _is_type_checking(node.test)):
            continue
        for statement in node.body:
            if not isinstance(statement, ast.ImportFrom) or statement.module is None:
                raise ValueError(
                    f"{init_file}: expected only 'from module import name' statements "
                    f"under 'if TYPE_CHECKING:', got line {statement.lineno}"
                )
            for alias in statement.names:
                origin[alias.asname or alias.name] = statement.module
    if not origin:
        raise ValueError(f"{init_file}: expected exports under 'if TYPE_CHECKING:', found none")
    return origin


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )
