"""The README's Python tour runs as written, and again on the store it left behind."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
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


def _score_lines(lines: list[str]) -> dict[str, dict[str, float]]:
    return {
        line[:16].strip(): ast.literal_eval(line[16:].strip())
        for line in lines
        if line.startswith(("partial pooling", "no pooling", "complete pooling"))
    }


def test_the_fleet_tour_runs_and_the_three_fits_agree(tmp_path: Path) -> None:
    found = re.search(
        r"## Fleet learning[^\n]*\n.*?```python\n(.*?)```.*?```text\n(.*?)```",
        README.read_text(),
        re.S,
    )
    assert found is not None, "README: no fleet-learning tour with its output"
    script = tmp_path / "fleet_tour.py"
    script.write_text(found.group(1))
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "R80790" in (tmp_path / "fleet.html").read_text()
    lines = result.stdout.strip().splitlines()
    scores = _score_lines(lines)
    # What the README shows it prints, to the digits shown (the predictions to 1e-6).
    shown = found.group(2).strip().splitlines()
    assert len(lines) == len(shown)
    for method, printed in _score_lines(shown).items():
        for metric, value in printed.items():
            assert scores[method][metric] == pytest.approx(value, abs=2e-3), (method, metric)
    for line, printed in zip(lines[3:], shown[3:], strict=True):
        numbers = [float(v) for v in re.findall(r"-?\d+\.\d+", line)]
        assert numbers == pytest.approx(
            [float(v) for v in re.findall(r"-?\d+\.\d+", printed)], rel=1e-6
        )
    # What the README's prose says of R80790 with one week.
    for metric in ("nmse", "crps"):
        assert scores["partial pooling"][metric] < scores["no pooling"][metric]
    assert (
        scores["partial pooling"]["joint_log_likelihood"]
        > scores["no pooling"]["joint_log_likelihood"]
    )
    # ... and of its coverage: the unmet target, no pooling's intervals nearly twice as wide.
    assert scores["partial pooling"]["coverage"] < scores["no pooling"]["coverage"]
    width = scores["no pooling"]["interval_width"] / scores["partial pooling"]["interval_width"]
    assert 1.5 < width < 2.0
    # Central, federated and gossip: the same predicted means.
    central, federated, gossip = (
        np.array(line.strip("[] ").split(), dtype=float) for line in lines[-3:]
    )
    assert central.shape == (3,)
    np.testing.assert_allclose(federated, central, rtol=1e-9)
    np.testing.assert_allclose(gossip, central, rtol=1e-8)


def _anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_links_between_the_docs_lead_to_files_and_headings() -> None:
    root = README.parent
    pages = [README, *sorted((root / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target, anchor in re.findall(r"\]\(([^)#\s]+)(?:#([^)]*))?\)", page.read_text()):
            path = page.parent / target
            if "://" in target:
                continue
            if not path.exists() or (anchor and anchor not in _anchors(path)):
                broken.append(f"{page.relative_to(root)} -> {target}#{anchor}")
    assert not broken
