"""Where OpenOA runs: its own virtual environment, made on first use.

``pip install openoa`` into twinweave's environment would replace pandas 3 with pandas
2.3 and SciPy 1.17 with 1.16 (OpenOA 3.2's pins), so OpenOA gets ``.venv-openoa`` beside
``.venv`` and the benchmarks call it as a subprocess (:mod:`benchmarks._openoa_worker`).
``TWINWEAVE_OPENOA_PYTHON`` names another interpreter that has OpenOA.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks._harness import REPO_ROOT

VENV = REPO_ROOT / ".venv-openoa"
WORKER = Path(__file__).with_name("_openoa_worker.py")
PACKAGES = ("openoa", "pyarrow")


@dataclass(frozen=True)
class OpenOAPython:
    """An interpreter with OpenOA, or why there is none."""

    python: Path | None
    problem: str = ""
    version: str | None = None


def _has_openoa(python: Path) -> str | None:
    """OpenOA's version under ``python``, or ``None``."""
    try:
        done = subprocess.run(
            [str(python), "-c", "import openoa; print(openoa.__version__)"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _tail(text: str, n_lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-n_lines:])


def find_openoa(*, install: bool = True, log: bool = True) -> OpenOAPython:
    """The interpreter to run OpenOA with; creates ``.venv-openoa`` if ``install``."""
    override = os.environ.get("TWINWEAVE_OPENOA_PYTHON")
    candidates = [Path(override)] if override else [VENV / "bin" / "python"]
    for python in candidates:
        if python.exists() and (version := _has_openoa(python)):
            return OpenOAPython(python, version=version)
    if override:
        return OpenOAPython(None, f"TWINWEAVE_OPENOA_PYTHON={override} cannot import openoa")
    if not install:
        return OpenOAPython(None, f"no OpenOA environment at {VENV} (installation disabled)")
    if log:
        print(f"installing {' '.join(PACKAGES)} into {VENV} (first run only) ...", flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    steps = [
        [base, "-m", "venv", str(VENV)],
        [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", *PACKAGES],
    ]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=1800)
        except (OSError, subprocess.SubprocessError) as error:
            return OpenOAPython(None, f"{' '.join(step)} failed: {error}")
        if done.returncode != 0:
            return OpenOAPython(
                None,
                f"{' '.join(step)} exited {done.returncode}:\n{_tail(done.stderr or done.stdout)}",
            )
    python = VENV / "bin" / "python"
    version = _has_openoa(python)
    if version is None:
        return OpenOAPython(None, f"openoa installed into {VENV} but cannot be imported")
    return OpenOAPython(python, version=version)
