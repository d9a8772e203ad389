"""What every benchmark shares: results, timing, the one-core limit, the machine record."""

from __future__ import annotations

import gc
import importlib.metadata
import math
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]

Better = Literal["higher", "lower"]


@dataclass
class Result:
    """One measured number, with its target and its competitor's number.

    ``ratio`` is always ``value / competitor_value``: read it with ``better`` (for a
    throughput, higher is better; for a time or an error, lower). A target applies to
    ``value`` or, with ``target_on="ratio"``, to the ratio.
    """

    benchmark: str
    name: str
    value: float | None
    unit: str
    better: Better
    target: float | None = None
    target_on: Literal["value", "ratio"] = "value"
    competitor: str | None = None
    competitor_value: float | None = None
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.value is None or self.competitor_value is None or self.competitor_value == 0:
            return None
        return self.value / self.competitor_value

    @property
    def met(self) -> bool | None:
        """Whether the target is met; ``None`` without a target or a measurement."""
        checked = self.ratio if self.target_on == "ratio" else self.value
        if self.target is None or checked is None or not math.isfinite(checked):
            return None
        return checked >= self.target if self.better == "higher" else checked <= self.target

    def as_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "better": self.better,
            "target": self.target,
            "target_on": self.target_on,
            "met": self.met,
            "competitor": self.competitor,
            "competitor_value": self.competitor_value,
            "ratio": self.ratio,
            "note": self.note,
            "details": self.details,
        }


# -- timing ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Timing:
    """Seconds per repeat, as CPU time of the calling thread and as wall-clock time.

    On a shared machine the scheduler gives other processes part of the wall-clock
    time; the thread's CPU time leaves that out and is what a dedicated core would show.
    """

    cpu: tuple[float, ...]
    wall: tuple[float, ...]

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)

    @property
    def wall_median(self) -> float:
        return statistics.median(self.wall)

    def summary(self, n_items: int | None = None) -> dict[str, float]:
        """Median and best, in seconds or, given ``n_items``, items per second."""
        if n_items is None:
            return {
                "cpu_median_s": self.cpu_median,
                "cpu_best_s": min(self.cpu),
                "wall_median_s": self.wall_median,
                "wall_best_s": min(self.wall),
            }
        return {
            "cpu_median_per_s": n_items / self.cpu_median,
            "cpu_best_per_s": n_items / min(self.cpu),
            "wall_median_per_s": n_items / self.wall_median,
            "wall_best_per_s": n_items / min(self.wall),
        }


def measure(
    run: Callable[[], object], *, repeats: int, setup: Callable[[], object] | None = None
) -> Timing:
    """Time ``run()`` ``repeats`` times, calling ``setup()`` untimed before each."""
    cpu: list[float] = []
    wall: list[float] = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        wall_start = time.perf_counter()
        cpu_start = time.thread_time()
        run()
        cpu.append(time.thread_time() - cpu_start)
        wall.append(time.perf_counter() - wall_start)
    return Timing(tuple(cpu), tuple(wall))


@dataclass(frozen=True)
class Latencies:
    """Per-call latencies [s] as thread CPU time and wall-clock time."""

    cpu: np.ndarray
    wall: np.ndarray

    def percentiles(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for kind, values in (("cpu", self.cpu), ("wall", self.wall)):
            for q in (50, 90, 99, 99.9):
                out[f"{kind}_p{q:g}_us"] = float(np.percentile(values, q) * 1e6)
            out[f"{kind}_max_us"] = float(values.max() * 1e6)
        return out


def per_call(run: Callable[[Any], object], items: Sequence[Any]) -> Latencies:
    """Latency of ``run(item)`` for each item, in order (the garbage collector stays on:
    its pauses are part of what a streaming twin sees)."""
    cpu = np.empty(len(items))
    wall = np.empty(len(items))
    thread_ns, perf_ns = time.thread_time_ns, time.perf_counter_ns
    for i, item in enumerate(items):
        w0 = perf_ns()
        c0 = thread_ns()
        run(item)
        c1 = thread_ns()
        w1 = perf_ns()
        cpu[i] = (c1 - c0) * 1e-9
        wall[i] = (w1 - w0) * 1e-9
    return Latencies(cpu, wall)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Garbage collection off (as :mod:`timeit` does), for comparison runs."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def one_core() -> Iterator[str]:
    """Limit BLAS and OpenMP pools to one thread; yields how the limit was applied.

    Environment variables (``OMP_NUM_THREADS=1`` ...) only act when the libraries load,
    so the limit is set at run time through threadpoolctl when it is installed.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield "threadpoolctl not installed: thread pools not limited"
        return
    with threadpool_limits(limits=1):
        yield "threadpoolctl.threadpool_limits(1)"


def single_thread_environment() -> dict[str, str]:
    """Environment for a subprocess whose numerical libraries must use one thread."""
    env = dict(os.environ)
    for name in (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "BLIS_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
    ):
        env[name] = "1"
    return env


# -- the machine ----------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def blas_info() -> list[dict[str, Any]] | str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    keys = ("user_api", "internal_api", "version", "num_threads", "architecture", "prefix")
    return [{k: info.get(k) for k in keys} for info in threadpool_info()]


def machine_info() -> dict[str, Any]:
    """Where and when the benchmarks ran."""
    info: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "load_average_1_5_15": list(os.getloadavg()),
        "blas": blas_info(),
        "packages": {
            name: _version(name)
            for name in (
                "twinweave",
                "numpy",
                "scipy",
                "pandas",
                "pyarrow",
                "duckdb",
                "river",
                "psutil",
                "threadpoolctl",
            )
        },
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }
    try:
        import psutil

        info["memory_total_gib"] = psutil.virtual_memory().total / 2**30
        info["physical_cpus"] = psutil.cpu_count(logical=False)
    except ImportError:
        pass
    return info


def noise_floor(n_calls: int = 5_000) -> dict[str, float]:
    """Spread of a fixed ~30 us NumPy workload's CPU time on this machine right now.

    A dedicated core gives p99 close to p50; a shared one does not, and the tail of any
    per-call latency measured here is inflated by about the same factor.
    """
    one = np.array([1.5])

    def work() -> None:
        x = one
        for _ in range(60):
            x = x * 1.0000001

    latencies = per_call(lambda _: work(), range(n_calls))
    p50 = float(np.percentile(latencies.cpu, 50) * 1e6)
    p99 = float(np.percentile(latencies.cpu, 99) * 1e6)
    return {"fixed_work_cpu_p50_us": p50, "fixed_work_cpu_p99_us": p99, "p99_over_p50": p99 / p50}


def peak_rss_kib() -> int:
    """This process's peak resident memory [KiB] since it started its program.

    Linux's ``ru_maxrss`` (``getrusage`` or ``wait4``) carries the parent's peak over
    ``fork`` and ``exec``, so a child started by a large parent reports at least the
    parent's size; ``VmHWM`` in ``/proc/self/status`` belongs to the new program alone.
    Elsewhere, ``ru_maxrss`` is the best there is.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
