"""The packages import their exports when first used (twinweave/core/_lazy.py)."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

LAZY_PACKAGES = ["twinweave", "twinweave.core", "twinweave.transfer"]


def fresh_process(code: str) -> str:
    """What ``code`` prints in a new interpreter (nothing imported yet)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def declared(package: str) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The ``__init__``'s imports under ``if TYPE_CHECKING:`` and its lazy table, each as
    ``{module: names}``."""
    init = Path(importlib.import_module(package).__file__ or "")
    tree = ast.parse(init.read_text(encoding="utf-8"))
    (block,) = [n for n in tree.body if isinstance(n, ast.If)]
    imports = {
        statement.module or "": [alias.name for alias in statement.names]
        for statement in block.body
        if isinstance(statement, ast.ImportFrom)
    }
    (assignment,) = block.orelse
    assert isinstance(assignment, ast.Assign) and isinstance(assignment.value, ast.Call)
    table = ast.literal_eval(assignment.value.args[1])
    return imports, {module: list(names) for module, names in table.items()}


@pytest.mark.parametrize("name", LAZY_PACKAGES)
def test_the_lazy_table_lists_what_the_type_checker_sees(name: str) -> None:
    imports, table = declared(name)
    assert table == imports
    exported = {n for names in table.values() for n in names}
    assert exported == set(importlib.import_module(name).__all__) - {"__version__"}


@pytest.mark.parametrize("name", LAZY_PACKAGES)
def test_every_export_resolves_and_a_typo_is_named(name: str) -> None:
    listed = fresh_process(f"import {name} as p; print(sorted(set(p.__all__) - set(dir(p))))")
    assert listed == "[]"
    package = importlib.import_module(name)
    for export in package.__all__:
        assert getattr(package, export) is not None, export
    with pytest.raises(AttributeError, match=f"module '{name}' has no attribute 'fit_centrall'"):
        package.fit_centrall  # noqa: B018


def test_a_flower_clientapp_process_does_without_pandas_pint_and_the_wind_domain() -> None:
    # Flower starts a process for every message; each used to import all of twinweave.
    heavy = ["pandas", "pint", "pydantic", "twinweave.data", "twinweave.domains"]
    loaded = fresh_process(
        "import sys, twinweave.transfer.flower_app; "
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))"
    )
    assert loaded == ""


def test_a_subpackage_is_an_attribute_of_its_package_when_first_used() -> None:
    printed = fresh_process(
        "import sys, twinweave; "
        "print('twinweave.models' in sys.modules, 'models' in dir(twinweave), "
        "twinweave.models.BayesianBasisRegression.__name__, "
        "twinweave.core.Twin is twinweave.Twin)"
    )
    assert printed == "False True BayesianBasisRegression True"
