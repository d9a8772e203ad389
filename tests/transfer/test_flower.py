"""Federated rounds over Flower: a SuperLink and one SuperNode per twin, as processes on
loopback; the same answer as the central fit, drop-outs as documented, nothing but the
documented summaries in any message, and no process left behind."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from twinweave.models import BayesianBasisRegression, SplineTerm
from twinweave.transfer import (
    FederatedResult,
    FleetPooling,
    FleetPrior,
    FlowerRunError,
    FlowerSettings,
    LocalSummary,
    LoggedMessage,
    LoopbackFederation,
    Population,
    TwinStatistics,
    fit_central,
    fit_federated,
    initial_population,
    local_step,
    read_message_log,
    save_statistics,
)
from twinweave.transfer._flower import write_result

pytestmark = [pytest.mark.slow, pytest.mark.service]

# Rounds over Flower take seconds each (a ClientApp process per message): the fit runs
# to fit_central's default tolerance (6 rounds here; 10 at 1e-10) within a cap, the
# drop-out run does exactly N_ROUNDS (NEVER is a tolerance no round meets).
TOL = 1e-6
MAX_ROUNDS = 20
NEVER = 1e-300
N_ROUNDS = 3
# What a twin may send: the summary's documented fields (docs/FLEET_MODEL.md).
SUMMARY_FIELDS = {name for name, _ in LocalSummary.ARRAYS} | {"log_evidence"}


def _emulator() -> BayesianBasisRegression:
    return BayesianBasisRegression(
        target="y",
        terms=(SplineTerm("x", 0.0, 1.0, 4),),
        noise_source="x",
        noise_edges=[0.0, 0.5, 1.0],
    )


def make_fleet(
    n_readings: Sequence[int], seed: int, n_periods: int | None = None
) -> tuple[dict[str, TwinStatistics], FleetPrior, dict[str, np.ndarray]]:
    """Scaled sine curves with noise: statistics, prior and each twin's raw ``y``; with
    ``n_periods``, each twin's readings in that many consecutive periods, shifted by a
    period effect (sd 0.01) per period and noise bin."""
    rng = np.random.default_rng(seed)
    stats: dict[str, TwinStatistics] = {}
    readings: dict[str, np.ndarray] = {}
    for k, n in enumerate(n_readings):
        x = rng.uniform(0.0, 1.0, n)
        y = (1.0 + 0.3 * rng.standard_normal()) * np.sin(2.0 * x) + rng.normal(0.0, 0.02, n)
        if n_periods is None:
            stats[f"T{k}"] = TwinStatistics.from_emulator(_emulator().update({"x": x, "y": y}))
        else:
            periods = np.arange(n) * n_periods // n
            # Without period effects in the data their variance heads for zero, which EM
            # nears only slowly: the fit would not converge in MAX_ROUNDS.
            y = y + rng.normal(0.0, 0.01, (n_periods, 2))[periods, (x >= 0.5).astype(int)]
            stats[f"T{k}"] = TwinStatistics.from_emulator(
                _emulator().update({"x": x, "y": y}), readings={"x": x, "y": y}, periods=periods
            )
        readings[f"T{k}"] = y
    return stats, FleetPrior.from_emulator(_emulator()), readings


def relative(a: np.ndarray | None, b: np.ndarray | None) -> float:
    assert a is not None and b is not None
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def assert_same_population(a: Population, b: Population, rtol: float) -> None:
    assert a.kinds == b.kinds
    for name in ("mean", "mean_covariance", "covariance", "noise_var", "global_mean"):
        assert relative(getattr(a, name), getattr(b, name)) <= rtol, name
    assert (a.period_var is None) == (b.period_var is None)
    if b.period_var is not None:
        assert relative(a.period_var, b.period_var) <= rtol, "period_var"


@dataclass
class Session:
    stats: dict[str, TwinStatistics]
    prior: FleetPrior
    readings: dict[str, np.ndarray]
    result: FederatedResult
    server_messages: list[LoggedMessage]
    twin_messages: dict[str, list[LoggedMessage]]
    pids_while_running: list[int]
    pids_after: list[int]
    progress: str


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Session:
    """Four twins (with 2,000 to 20,000 readings, in 10 periods each) over Flower, every
    message logged."""
    directory = tmp_path_factory.mktemp("flower")
    stats, prior, readings = make_fleet([2_000, 5_000, 10_000, 20_000], seed=11, n_periods=10)
    logs = {twin: directory / f"log-{twin}" for twin in stats}
    with LoopbackFederation(directory / "federation") as federation:
        federation.add_twins(
            {t: save_statistics(s, directory / f"{t}.npz") for t, s in stats.items()},
            message_logs=logs,
        )
        run = federation.submit(
            prior,
            ["default"],
            FlowerSettings(
                n_rounds=MAX_ROUNDS, tol=TOL, min_twins=len(stats), record_messages=True
            ),
        )
        drawn = io.StringIO()
        with contextlib.redirect_stderr(drawn):
            result = run.result(timeout=600, progress=True)
        pids_while_running = federation.pids()
    return Session(
        stats,
        prior,
        readings,
        result,
        run.server_messages(),
        {twin: read_message_log(path) for twin, path in logs.items()},
        pids_while_running,
        federation.pids(),
        drawn.getvalue(),
    )


def test_flower_rounds_give_the_central_answer(session: Session) -> None:
    result = session.result
    central = fit_central(session.stats, session.prior, n_rounds=MAX_ROUNDS, tol=TOL)
    assert central.converged and result.converged
    assert result.n_rounds == central.n_rounds
    assert all(r.answered == tuple(session.stats) and not r.missing for r in result.rounds)
    assert central.population is not None
    assert_same_population(result.population, central.population, 1e-9)
    in_process = fit_federated(
        FleetPooling(session.prior, ["default"], n_rounds=MAX_ROUNDS, tol=TOL), session.stats
    )
    # Arrays travel as .npy bytes: bit for bit what the twins computed.
    assert_same_population(result.population, in_process.population, 0.0)
    # The rounds were drawn as they came, to the last, as the in-process fits draw them.
    assert "Flower run" in session.progress and "stops below" in session.progress
    rounds = [int(r) for r in re.findall(r"round (\d+), change", session.progress)]
    assert rounds and rounds[-1] == result.n_rounds, session.progress


def test_the_federation_leaves_no_process_behind(session: Session) -> None:
    # SuperLink, its SuperExec, four SuperNodes and theirs at least.
    assert len(session.pids_while_running) >= 10
    assert session.pids_after == []


def test_every_message_over_flower_carries_only_the_documented_records(
    session: Session,
) -> None:
    n_twins = len(session.stats)
    population_keys = {f"population/{k}" for k in session.result.population.to_arrays()}
    sent = [m for m in session.server_messages if m.direction == "sent"]
    received = [m for m in session.server_messages if m.direction == "received"]
    assert len(sent) == len(received) == session.result.n_rounds * n_twins
    for message in sent:
        # Round 1's population has no noise or period variances yet (each twin uses its
        # own noise and takes its blocks' levels as free).
        expected = population_keys - (
            {"population/noise_var", "population/period_var"}
            if message.server_round == 1
            else set()
        )
        assert set(message.arrays) == expected
        assert set(message.config) == {"fit/server-round", "fit/kinds", "fit/basis-fingerprint"}
        # A digest of the basis, which each twin checks against its statistics'.
        assert message.config["fit/basis-fingerprint"] == session.prior.basis_fingerprint
    shapes = set()
    for message in received:
        assert message.error is None and message.twin_id in session.stats
        assert set(message.arrays) == {f"summary/{k}" for k in SUMMARY_FIELDS}
        assert set(message.config) == {"fit/server-round", "fit/twin-id", "fit/kinds"}
        shapes.add(tuple(sorted((k, v.shape) for k, v in message.arrays.items())))
    # Twins with 2,000 and with 20,000 readings send arrays of one shape.
    assert len(shapes) == 1


def test_a_twin_sends_its_local_step_and_no_reading(session: Session) -> None:
    for twin, messages in session.twin_messages.items():
        assert [m.direction for m in messages] == ["received", "sent"] * session.result.n_rounds
        for instruction, answer in zip(messages[::2], messages[1::2], strict=True):
            assert instruction.server_round == answer.server_round
            kinds = instruction.config["fit/kinds"]
            assert isinstance(kinds, list)
            population = Population.from_arrays(
                {k.removeprefix("population/"): v for k, v in instruction.arrays.items()},
                kinds,
            )
            expected = local_step(session.stats[twin], population).to_arrays()
            assert set(answer.arrays) == {f"summary/{k}" for k in expected}
            own = session.stats[twin]
            assert own.period_sum is not None and own.period_features is not None
            for key, value in expected.items():
                np.testing.assert_array_equal(answer.arrays[f"summary/{key}"], value)
                assert not np.isin(answer.arrays[f"summary/{key}"], session.readings[twin]).any()
                # Nor the sums of a period block (a zero, a feature absent from a bin,
                # says nothing).
                for private in (own.period_sum, own.period_features):
                    values = private[private != 0.0]
                    assert not np.isin(answer.arrays[f"summary/{key}"], values).any()
            assert (answer.arrays["summary/period_ss"] > 0).all()
    # What the server received is what the twins sent.
    by_round = {
        (m.twin_id, m.server_round): m for m in session.server_messages if m.direction == "received"
    }
    for twin, messages in session.twin_messages.items():
        for answer in messages[1::2]:
            got = by_round[(twin, answer.server_round)]
            for key, value in answer.arrays.items():
                np.testing.assert_array_equal(got.arrays[key], value)


@pytest.mark.filterwarnings(
    "ignore::twinweave.transfer.ConvergenceWarning"
)  # rounds capped on purpose
def test_a_killed_supernode_misses_a_round_and_is_pooled_again_when_back(
    tmp_path: Path,
) -> None:
    stats, prior, _ = make_fleet([3_000, 4_000, 5_000, 6_000], seed=13)
    paths = {twin: save_statistics(s, tmp_path / f"{twin}.npz") for twin, s in stats.items()}
    # A refit: the rounds start from a population fitted before (two rounds in process).
    start = fit_central(stats, prior, n_rounds=2, tol=NEVER).population
    assert start is not None
    with LoopbackFederation(tmp_path / "federation") as federation:
        federation.add_twins(paths)
        # Refused before any run: each twin would answer every round with an error.
        with pytest.raises(ValueError, match=r"twin 'T0': kind 'default' is not one the run"):
            federation.submit(prior, ["other"])
        run = federation.submit(
            prior,
            ["default"],
            FlowerSettings(
                n_rounds=N_ROUNDS,
                tol=NEVER,
                min_twins=len(stats),
                max_missed_rounds=2,
                round_timeout=30.0,
            ),
            start=start,
        )
        run.wait_for_round(1, timeout=300)
        # Killed as soon as round 1 is aggregated: it cannot answer round 2 (a ClientApp
        # alone takes longer to start than this).
        federation.kill_twin("T3")
        time.sleep(1.0)
        federation.add_twin("T3", paths["T3"])  # a new SuperNode for the same twin
        result = run.result(timeout=600)
    assert federation.pids() == []
    rounds = result.rounds
    assert rounds[0].answered == ("T0", "T1", "T2", "T3")
    assert rounds[1].answered == ("T0", "T1", "T2") and rounds[1].missing == ("T3",)
    assert rounds[2].answered == ("T0", "T1", "T2", "T3") and rounds[2].missing == ()
    assert not any(r.gone for r in rounds)
    # The documented semantics, replayed in process: round 2 pools the three that
    # answered, round 3 all four again.
    everyone, three = list(stats), ["T0", "T1", "T2"]

    def replay(start: Population | None) -> FederatedResult:
        return fit_federated(
            FleetPooling(
                prior, ["default"], n_rounds=N_ROUNDS, tol=NEVER, max_missed_rounds=2, start=start
            ),
            stats,
            available=lambda r: three if r == 2 else everyone,
        )

    replayed = replay(start)
    assert [r.answered for r in replayed.rounds] == [r.answered for r in rounds]
    assert_same_population(result.population, replayed.population, 1e-12)
    # The run started from ``start``, not from the prior.
    assert relative(result.population.covariance, replay(None).population.covariance) > 1e-6
    uninterrupted = fit_central(stats, prior, n_rounds=N_ROUNDS, tol=NEVER, start=start)
    assert uninterrupted.population is not None
    assert relative(result.population.covariance, uninterrupted.population.covariance) > 1e-6


@pytest.mark.filterwarnings("ignore::twinweave.transfer.ConvergenceWarning")  # one round
def test_twins_that_could_never_answer_are_refused_before_a_run(tmp_path: Path) -> None:
    stats, prior, _ = make_fleet([1_000, 1_000], seed=19)
    x = np.random.default_rng(19).uniform(0.0, 1.0, 500)
    other_basis = BayesianBasisRegression(
        target="y", terms=(SplineTerm("x", 0.0, 1.0, 6),), noise_source="x", noise_edges=[0, 1]
    ).update({"x": x, "y": np.sin(2.0 * x)})
    path = save_statistics(stats["T0"], tmp_path / "T0.npz")
    with LoopbackFederation(tmp_path / "federation") as federation:
        superlink = federation.pids()
        with pytest.raises(TypeError, match="expected twin identifiers as text, got 5"):
            federation.add_twins({5: path})  # type: ignore[dict-item]
        assert federation.pids() == superlink  # refused before a SuperNode started
        federation.add_twins(
            {
                "T0": path,
                "odd": save_statistics(
                    TwinStatistics.from_emulator(other_basis), tmp_path / "odd.npz"
                ),
            }
        )
        # It would answer every round with an error and never be pooled.
        with pytest.raises(ValueError, match=r"twin 'odd': expected 7 features .* got 9"):
            federation.submit(prior, ["default"])
        # A twin that fails in a round anyway (its file gone) is named, not only its
        # node's number.
        federation.kill_twin("odd")
        federation.add_twin("T1", save_statistics(stats["T1"], tmp_path / "T1.npz"))
        (tmp_path / "T1.npz").unlink()
        settings = FlowerSettings(min_twins=2, n_rounds=1, tol=NEVER)
        with pytest.warns(
            UserWarning, match=r"no summary in the last round \(\d+: .*twin 'T1': FileNotFoundError"
        ):
            result = federation.fit(prior, ["default"], settings, timeout=300)
        assert result.twin_ids == ("T0",)
    assert federation.pids() == []


def test_a_twin_of_other_knots_and_the_same_sizes_is_refused_before_a_run(
    tmp_path: Path,
) -> None:
    stats, prior, _ = make_fleet([1_000], seed=23)
    x = np.random.default_rng(23).uniform(0.0, 1.0, 500)
    other_knots = BayesianBasisRegression(
        target="y",
        terms=(SplineTerm("x", 0.0, 1.2, 4),),
        noise_source="x",
        noise_edges=[0.0, 0.5, 1.0],
    ).update({"x": x, "y": np.sin(2.0 * x)})
    odd = TwinStatistics.from_emulator(other_knots)
    assert (odd.n_features, odd.n_bins) == (stats["T0"].n_features, stats["T0"].n_bins)
    with LoopbackFederation(tmp_path / "federation") as federation:
        federation.add_twins(
            {
                "T0": save_statistics(stats["T0"], tmp_path / "T0.npz"),
                "odd": save_statistics(odd, tmp_path / "odd.npz"),
            }
        )
        # Its shapes fit: only the fingerprint read from its file tells it apart.
        with pytest.raises(ValueError, match=r"twin 'odd': expected basis fingerprint"):
            federation.submit(prior, ["default"])
    assert federation.pids() == []


def test_a_failed_run_raises_and_leaves_no_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import twinweave.transfer._flower as flower

    stats, prior, _ = make_fleet([1_000], seed=17)
    # The directory was used before, by a run that succeeded: its result is not this
    # run's (the run used to share its folder, and returned that result at once).
    earlier = tmp_path / "federation" / "runs" / "run-1"
    earlier.mkdir(parents=True)
    write_result(
        earlier, FederatedResult(initial_population(prior, ["default"]), (), True, ("T0",))
    )
    federation = LoopbackFederation(tmp_path / "federation")
    # A fleet file the ServerApp cannot read: it fails before round 1.
    monkeypatch.setattr(
        flower, "save_fleet", lambda prior, kinds, path, start=None: path.write_bytes(b"no fleet")
    )
    with pytest.raises(FlowerRunError, match=r"the ServerApp of run \d+ failed"), federation:
        federation.add_twin("T0", save_statistics(stats["T0"], tmp_path / "T0.npz"))
        federation.fit(prior, ["default"], FlowerSettings(connect_timeout=3.0), timeout=300)
    assert federation.pids() == []


@pytest.mark.filterwarnings("ignore::twinweave.transfer.ConvergenceWarning")  # one round
def test_a_federation_refuses_before_it_starts_anything_and_warns_as_the_fits_do(
    tmp_path: Path,
) -> None:
    stats, prior, _ = make_fleet([1_000, 1_500], seed=31)
    path = save_statistics(stats["T0"], tmp_path / "T0.npz")
    federation_dir = tmp_path / "federation"
    with LoopbackFederation(federation_dir) as federation:
        # T0's file under a second name: one twin's readings counted twice.
        twins = {
            "T0": path,
            "T0 again": path,
            "T1": save_statistics(stats["T1"], tmp_path / "T1.npz"),
        }
        federation.add_twins(twins)
        # T5 was started before T0 was found running, and kept running.
        with pytest.raises(
            ValueError, match=r"statistics: twins \['T0'\] already have a running SuperNode"
        ):
            federation.add_twins({"T5": path, "T0": path})
        assert federation.twin_ids == list(twins)
        assert not list((federation_dir / "logs").glob("*T5*"))
        # It failed on 'as_toml' after the run's fleet file was written.
        with pytest.raises(TypeError, match=r"settings: expected FlowerSettings .*, got dict"):
            federation.submit(prior, ["default"], {"n_rounds": 2})  # type: ignore[arg-type]
        # The ServerApp waited connect_timeout for SuperNodes that were never to come.
        with pytest.raises(
            ValueError,
            match=r"min_twins: expected at most the 3 twins the federation has "
            r"\('T0', 'T0 again', 'T1'\), got 9",
        ):
            federation.fit(prior, ["default"], FlowerSettings(min_twins=9, connect_timeout=5.0))
        assert not (federation_dir / "runs").exists()
        # Pooled without a word, where fit_federated warns.
        with pytest.warns(
            UserWarning, match=r"twin 'T0' and twin 'T0 again': the same statistics .* twice"
        ) as caught:
            result = federation.fit(
                prior, ["default"], FlowerSettings(min_twins=3, n_rounds=1, tol=NEVER), timeout=300
            )
        assert result.twin_ids == ("T0", "T0 again", "T1")
        # At the user's line, as the in-process fits warn.
        assert [w.filename for w in caught if "same statistics" in str(w.message)] == [__file__]
    assert federation.pids() == []


def _crash(federation: LoopbackFederation, program: str) -> None:
    """SIGKILL the federation's process running ``program`` (only it), as a crash would."""
    (pid,) = [
        pid
        for pid in federation.pids()
        if Path(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[1].decode()).name == program
    ]
    os.kill(pid, signal.SIGKILL)


def test_a_run_fails_at_once_when_its_superlink_or_every_supernode_exits(
    tmp_path: Path,
) -> None:
    # It was noticed only when the result's timeout ran out (an hour in the docs).
    stats, prior, _ = make_fleet([1_000], seed=23)
    path = save_statistics(stats["T0"], tmp_path / "T0.npz")
    with LoopbackFederation(tmp_path / "federation") as federation:
        federation.add_twin("T0", path)
        run = federation.submit(prior, ["default"], FlowerSettings(n_rounds=1000, tol=NEVER))
        _crash(federation, "flower-supernode")
        # The message, not a clock, says the wait ended on the exit: the timeout's own
        # error is "not aggregated within 30 s" (a timed assertion would be noise here).
        with pytest.raises(
            FlowerRunError,
            match=r"every SuperNode exited \('T0' with code -9 \(killed by SIGKILL\)\) while "
            rf"waiting for round 1 of run {run.run_id}",
        ):
            run.wait_for_round(1, timeout=30)
        # Back, as after a crash; then the SuperLink goes.
        federation.add_twin("T0", path)
        _crash(federation, "flower-superlink")
        with pytest.raises(
            FlowerRunError,
            match=r"the SuperLink exited with code -9 \(killed by SIGKILL\) while waiting for "
            rf"the result of run {run.run_id}; expected it running:\n",
        ) as raised:
            run.result(timeout=30)
        # The end of its log, as when it does not start.
        log = (tmp_path / "federation" / "logs" / "superlink.log").read_text()
        assert log.strip().splitlines()[-1] in str(raised.value)
        # Nor does a new run wait for flwr run to find the SuperLink unavailable.
        with pytest.raises(FlowerRunError, match=r"SuperLink exited .* while submitting a run"):
            federation.submit(prior, ["default"])
    assert federation.pids() == []


@pytest.fixture
def take_port(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], int]]:
    """``take_port()`` binds a listener on a port and has the federation's port picker
    hand that port out next: the race of a port taken between the kernel's choice and
    the bind, made certain."""
    import twinweave.transfer._flower as flower

    pending: list[int] = []
    real = flower._free_ports
    monkeypatch.setattr(
        flower, "_free_ports", lambda n: [pending.pop(0), *real(n - 1)] if pending else real(n)
    )
    with contextlib.ExitStack() as listeners:

        def take() -> int:
            listener = listeners.enter_context(socket.create_server(("127.0.0.1", 0)))
            pending.append(int(listener.getsockname()[1]))
            return pending[-1]

        yield take


def _argument(federation: LoopbackFederation, program: str, option: str) -> str:
    """The value of ``option`` on the command line of the federation's ``program``."""
    for pid in federation.pids():
        argv = [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]
        if Path(argv[1]).name == program:
            return argv[argv.index(option) + 1]
    raise AssertionError(f"no {program} among {federation.pids()}")


def test_a_port_taken_before_the_bind_is_replaced_by_a_fresh_one(
    tmp_path: Path, take_port: Callable[[], int]
) -> None:
    # The SuperLink failed to bind, yet the federation started: another process's
    # listener passed for it, and the first run failed with "SuperLink unavailable".
    stats, prior, _ = make_fleet([1_000], seed=29)
    taken = take_port()
    with LoopbackFederation(tmp_path / "federation") as federation:
        assert federation.address != f"127.0.0.1:{taken}"
        assert _argument(federation, "flower-superlink", "--port") != str(taken)
        taken = take_port()
        federation.add_twin("T0", save_statistics(stats["T0"], tmp_path / "T0.npz"))
        assert federation.twin_ids == ["T0"]
        assert _argument(federation, "flower-supernode", "--port") != str(taken)
        # Each process met the taken port once, in its whole log (a retry appends to the
        # same file, and under load pushes the bind error out of the last lines).
        logs = tmp_path / "federation" / "logs"
        for name in ("superlink", "supernode-1-T0"):
            assert "address already in use" in (logs / f"{name}.log").read_text().lower()
        run = federation.submit(prior, ["default"], FlowerSettings(n_rounds=1000, tol=NEVER))
        assert run.run_id
    assert federation.pids() == []


def test_a_port_taken_twice_is_an_error_naming_it(
    tmp_path: Path, take_port: Callable[[], int]
) -> None:
    take_port()
    again = take_port()
    federation = LoopbackFederation(tmp_path / "federation")
    with (
        pytest.raises(
            FlowerRunError,
            match=rf"superlink could not bind 127\.0\.0\.1:{again}: address already in use",
        ),
        federation,
    ):
        pass
    assert federation.pids() == []
