"""The files through which a Flower run reports to the process that submitted it: the
submitter polls them while the ServerApp writes, so it must never read half a record."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from twinweave.transfer import FlowerRun, FlowerRunError, FlowerSettings, LoopbackFederation
from twinweave.transfer._flower import (
    _free_ports,
    _listening,
    read_json_lines,
    write_text_atomically,
)


def test_a_line_still_being_appended_is_left_for_the_next_read(tmp_path: Path) -> None:
    path = tmp_path / "rounds.jsonl"
    assert read_json_lines(path) == []
    complete = [{"server_round": 1}, {"server_round": 2}]
    path.write_text("".join(json.dumps(line) + "\n" for line in complete) + '{"server_ro')
    assert read_json_lines(path) == complete
    with path.open("a") as handle:
        handle.write('und": 3}\n')
    assert read_json_lines(path) == [*complete, {"server_round": 3}]


def test_an_atomic_write_replaces_the_file_whole_and_leaves_nothing_aside(
    tmp_path: Path,
) -> None:
    path = tmp_path / "error.json"
    write_text_atomically(path, '{"error": "first"}')
    write_text_atomically(path, '{"error": "second"}')
    assert json.loads(path.read_text()) == {"error": "second"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["error.json"]


def test_ports_for_a_federation_are_distinct_and_free() -> None:
    # Asked for one at a time and released, the kernel may hand a port out twice; two
    # SuperNodes would then race for it and one twin would never answer.
    ports = _free_ports(64)
    assert len(set(ports)) == 64
    assert not any(_listening(port) for port in ports)


def test_a_twin_without_a_supernode_is_named_with_those_that_have_one(tmp_path: Path) -> None:
    # A bare KeyError: 'nobody'. No process is needed to refuse it.
    federation = LoopbackFederation(tmp_path)
    with pytest.raises(ValueError, match=r"twin_id: expected a twin with a running SuperNode"):
        federation.kill_twin("nobody")


def test_a_run_of_no_twins_is_refused_at_submit(tmp_path: Path) -> None:
    # It was submitted, and failed only after connect_timeout (3 minutes by default).
    from twinweave.models import BayesianBasisRegression, SplineTerm
    from twinweave.transfer import FleetPrior

    emulator = BayesianBasisRegression(
        target="y", terms=(SplineTerm("x", 0.0, 1.0, 4),), noise_source="x", noise_edges=[0, 1]
    )
    federation = LoopbackFederation(tmp_path)
    with pytest.raises(ValueError, match=r"expected twins to pool: add_twin or add_twins"):
        federation.submit(FleetPrior.from_emulator(emulator), ["default"])
    assert federation.pids() == []


def test_a_ctrl_c_during_close_is_held_until_every_process_has_ended() -> None:
    # A second Ctrl-C cut close() short and left a ServerApp running after the script.
    import os
    import signal

    from twinweave.transfer._flower import _interrupts_held

    # Python's own handler, as in a script (a test worker may have set another).
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        finished = False
        with pytest.raises(KeyboardInterrupt), _interrupts_held():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
            finished = True  # reached: the interrupts waited
        assert finished
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        with _interrupts_held():
            pass  # nothing held, nothing raised
    finally:
        signal.signal(signal.SIGINT, before)


def test_settings_that_are_not_flower_settings_are_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    # A dict failed on 'as_toml' after the run's fleet file was written.
    from twinweave.models import BayesianBasisRegression, SplineTerm
    from twinweave.transfer import FleetPrior

    emulator = BayesianBasisRegression(
        target="y", terms=(SplineTerm("x", 0.0, 1.0, 4),), noise_source="x", noise_edges=[0, 1]
    )
    federation = LoopbackFederation(tmp_path)
    with pytest.raises(TypeError, match=r"settings: expected FlowerSettings .*, got dict"):
        federation.submit(FleetPrior.from_emulator(emulator), ["default"], {"n_rounds": 2})  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
    assert federation.pids() == []


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("startup_timeout", "x", r"startup_timeout: expected a number > 0 \[s\], got 'x'"),
        ("shutdown_timeout", -1, r"shutdown_timeout: expected a number > 0 \[s\], got -1"),
        ("shutdown_timeout", None, r"shutdown_timeout: expected a number > 0 \[s\], got None"),
    ],
)
def test_a_federations_timeouts_are_checked_as_flower_settings_are(
    tmp_path: Path, setting: str, value: object, message: str
) -> None:
    # Accepted, to fail in a comparison at the first wait (or never wait at all).
    with pytest.raises(ValueError, match=message):
        LoopbackFederation(tmp_path, **{setting: value})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message.replace(setting, "round_timeout")):
        FlowerSettings(round_timeout=value)  # type: ignore[arg-type]


def test_an_empty_twin_identifier_is_refused_as_empty(tmp_path: Path) -> None:
    # It was refused as not text (fit_federated took it).
    federation = LoopbackFederation(tmp_path)
    with pytest.raises(
        ValueError,
        match=r"statistics: expected non-empty twin identifiers, got "
        "the empty string ''",
    ):
        federation.add_twins({"": tmp_path / "T0.npz"})
    with pytest.raises(TypeError, match=r"statistics: expected twin identifiers as text, got 5"):
        federation.add_twins({5: tmp_path / "T0.npz"})  # type: ignore[dict-item]
    assert federation.pids() == []


class _SlowToStop:
    """What a run needs of its federation, with a ``flwr stop`` that takes its time."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def _check_running(self, waiting_for: str) -> None:
        pass

    def stop_run(self, run_id: str) -> None:
        time.sleep(self.seconds)

    def log_tails(self) -> str:
        return ""


def test_a_run_that_times_out_says_how_long_stopping_it_took(tmp_path: Path) -> None:
    # result(timeout=3) raised after 20 s, saying "wrote no result within 3 s": the rest
    # was flwr stop's (up to 30 s).
    run = FlowerRun("7", tmp_path, _SlowToStop(0.5))  # type: ignore[arg-type]
    with pytest.raises(
        FlowerRunError, match=r"run 7 wrote no result within 0\.05 s; asking"
    ) as raised:
        run.result(timeout=0.05)
    took = re.search(
        r"asking Flower to stop it \(flwr stop\) took (\d+\.\d) s more", str(raised.value)
    )
    assert took is not None and float(took.group(1)) >= 0.5
