"""The packages import their exports when first used (twinweave/_lazy.py)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from twinweave._lazy import lazy_exports

LAZY_PACKAGES = ["twinweave", "twinweave.core", "twinweave.transfer"]


@pytest.mark.parametrize("name", LAZY_PACKAGES)
def test_every_export_resolves_and_is_listed(name: str) -> None:
    package = importlib.import_module(name)
    for export in package.__all__:
        assert getattr(package, export) is not None, export
    assert set(package.__all__) <= set(dir(package))
    with pytest.raises(AttributeError, match=f"module '{name}' has no attribute 'fit_centrall'"):
        package.fit_centrall  # noqa: B018


def test_a_flower_clientapp_process_does_without_pandas_pint_and_the_wind_domain() -> None:
    # Flower starts a process for every message; each used to import all of twinweave.
    heavy = ["pandas", "pint", "pydantic", "twinweave.data", "twinweave.domains"]
    probe = (
        "import sys, twinweave.transfer.flower_app; "
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""


def test_a_subpackage_is_an_attribute_of_its_package() -> None:
    import twinweave

    assert twinweave.core.Twin is twinweave.Twin


def test_exports_must_be_listed_under_type_checking(tmp_path: Path) -> None:
    empty = tmp_path / "__init__.py"
    empty.write_text('"""No exports."""\n', encoding="utf-8")
    with pytest.raises(ValueError, match="expected exports under 'if TYPE_CHECKING:'"):
        lazy_exports("somepackage", str(empty))
    star = tmp_path / "star.py"
    star.write_text("if TYPE_CHECKING:\n    import numpy\n", encoding="utf-8")
    with pytest.raises(ValueError, match="only 'from module import name' statements"):
        lazy_exports("somepackage", str(star))
