"""The unit registry keeps pint's parsed definitions in the user's cache folder, and works
as without it wherever that folder cannot be used."""

from __future__ import annotations

from pathlib import Path

import pint
import pytest

from twinweave.core._schema import unit_registry

#: A fresh registry each call (``unit_registry`` itself is created once per process).
new_registry = unit_registry.__wrapped__


def converts(registry: pint.UnitRegistry[float]) -> bool:
    return bool(abs(registry.Quantity(36.0, "km/h").to("m/s").magnitude - 10.0) < 1e-12)


def cached_files(cache: Path) -> list[Path]:
    return sorted(cache.glob("twinweave/pint-*/*.pickle"))


def test_the_parsed_definitions_are_kept_and_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert converts(new_registry())
    kept = cached_files(tmp_path)
    assert kept, "no definitions were kept"
    written = {path: path.stat().st_mtime_ns for path in kept}
    assert converts(new_registry())
    # Read back, not written again.
    assert {path: path.stat().st_mtime_ns for path in cached_files(tmp_path)} == written


def test_a_cache_folder_that_cannot_be_made_is_done_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert converts(new_registry())


def test_a_half_written_cache_is_parsed_anew_and_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    new_registry()
    for path in cached_files(tmp_path):
        path.write_bytes(path.read_bytes()[:100])  # as a process killed while writing left it
    assert converts(new_registry())
    assert cached_files(tmp_path) == []  # not read again: the next start keeps a whole one
    new_registry()
    assert cached_files(tmp_path)
