"""The unit registry keeps pint's parsed definitions in the user's cache folder, and works
as without it wherever that folder cannot be used."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pint
import platformdirs
import pytest

from twinweave.core._schema import unit_registry

#: A fresh registry each call (``unit_registry`` itself is created once per process).
new_registry = unit_registry.__wrapped__

CONVERSIONS = [
    (36.0, "km/h", "m/s"),
    (15.0, "degC", "K"),
    (2.05, "MW", "kW"),
    (1.0, "rad", "degree"),
]


def same_as_parsed(registry: pint.UnitRegistry[float]) -> bool:
    """Whether ``registry`` converts as one parsed without a cache does."""
    parsed = pint.UnitRegistry[float]()
    return all(
        registry.Quantity(value, unit).to(to).magnitude
        == parsed.Quantity(value, unit).to(to).magnitude
        for value, unit, to in CONVERSIONS
    )


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's cache folder, here a fresh one."""
    monkeypatch.setattr(platformdirs, "user_cache_path", lambda name: tmp_path / name)
    return tmp_path


def kept(cache: Path) -> list[Path]:
    return sorted(cache.glob("twinweave/*/*.pickle"))


def test_the_parsed_definitions_are_kept_and_read_back(cache: Path) -> None:
    assert same_as_parsed(new_registry())
    assert kept(cache), "no definitions were kept"
    # Written whole under another name, then renamed: nothing is left half-way.
    assert [p.name for p in (cache / "twinweave").iterdir()] == [kept(cache)[0].parent.name]
    written = {path: path.stat().st_mtime_ns for path in kept(cache)}
    assert same_as_parsed(new_registry())
    assert {path: path.stat().st_mtime_ns for path in kept(cache)} == written  # read back


def test_a_cache_folder_that_cannot_be_made_is_done_without(cache: Path) -> None:
    (cache / "twinweave").write_text("a file where the cache folder would go")
    assert same_as_parsed(new_registry())


def test_a_damaged_cache_is_parsed_anew_and_removed(cache: Path) -> None:
    new_registry()
    for path in kept(cache):
        path.write_bytes(path.read_bytes()[:100])
    assert same_as_parsed(new_registry())
    assert kept(cache) == []  # not read again: the next start keeps a whole one
    new_registry()
    assert kept(cache)


@pytest.mark.skipif(sys.platform != "linux", reason="XDG_CACHE_HOME is the cache on Linux")
def test_processes_starting_together_each_get_a_whole_registry(tmp_path: Path) -> None:
    script = (
        "from twinweave.core._schema import unit_registry; "
        "print(unit_registry().Quantity(15.0, 'degC').to('K').magnitude)"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    starts = [
        subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    assert [start.communicate(timeout=120)[0].strip() for start in starts] == ["288.15"] * 4
    assert all(start.returncode == 0 for start in starts)
    # One cache, whoever renamed first; the others' folders are gone.
    assert len(list((tmp_path / "twinweave").iterdir())) == 1
