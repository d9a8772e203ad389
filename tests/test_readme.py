"""The README's Python tour runs as written, and again on the store it left behind."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_python_tour_runs_twice(tmp_path: Path) -> None:
    found = re.search(
        r"## A tour of the Python API\n\n```python\n(.*?)```", README.read_text(), re.S
    )
    assert found is not None, "README: no Python tour"
    script = tmp_path / "tour.py"
    script.write_text(found.group(1))
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr[-3000:]
        # The chain from the raw file to the prediction, and the what-if's quantities.
        assert "sha256=" in result.stdout and "prediction:" in result.stdout
        assert "hours_at_rated" in result.stdout
    assert (tmp_path / "farm.duckdb").exists()
