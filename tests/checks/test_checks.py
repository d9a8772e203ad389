"""The conformance checks catch the defects they are for (a check that cannot fail is a
defect of its own): each broken emulator below fails the check aimed at it."""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any, Self

import numpy as np
import pytest

from twinweave.checks import (
    ConformanceError,
    LinearPartLoad,
    PumpCurve,
    ReservoirBalance,
    Settings,
    SyntheticProblem,
    bins_emulator,
    check_bounds,
    check_branch_isolation,
    check_calibration,
    check_clone,
    check_emulator,
    check_inputs,
    check_provenance,
    check_restore,
    check_streaming_equals_batch,
    check_units,
    pump_emulator,
    register,
    registered_cases,
    reservoir_emulator,
    unregistered_emulators,
    yield_checks,
)
from twinweave.core import CensoredNormal, Columns, State, Twin
from twinweave.domains.wind import MethodOfBins
from twinweave.models import BayesianBasisRegression, StateSpaceEmulator

SMALL = Settings(n_train=1000, n_test=1000)


def run(check: Any, factory: Any, problem: SyntheticProblem) -> None:
    check(factory, problem, np.random.default_rng(0), SMALL)


class Overconfident(BayesianBasisRegression):
    def predict(self, inputs: Columns) -> CensoredNormal:
        p = super().predict(inputs)
        return CensoredNormal(
            p.loc, p.noise_var / 4, lower=p.lower, upper=p.upper, units=p.units, factor=p.factor
        )


class Unbounded(BayesianBasisRegression):
    def predict(self, inputs: Columns) -> CensoredNormal:
        p = super().predict(inputs)
        return CensoredNormal(p.loc, p.latent_var, units=p.units)


class InWatts(MethodOfBins):
    def predict(self, inputs: Columns) -> CensoredNormal:
        p = super().predict(inputs)
        return CensoredNormal(p.loc, p.noise_var, lower=p.lower, upper=p.upper, units="W")


class SharesItsState(MethodOfBins):
    """Hands out and keeps the very arrays it learns in (no copies)."""

    def state(self) -> State:
        return {
            "count_": self.count_,
            "sum_speed_": self.sum_speed_,
            "sum_power_": self.sum_power_,
            "sum_power_sq_": self.sum_power_sq_,
        }

    @classmethod
    def from_state(cls, params: Mapping[str, Any], state: State) -> Self:
        model = cls(**params)
        for name, value in state.items():
            setattr(model, name, value)
        return model


class SkipsSingleReadings(MethodOfBins):
    def update(self, observations: Columns) -> Self:
        if np.ndim(observations["power"]) == 0:
            return self
        return super().update(observations)


class CountsItsBatches(MethodOfBins):
    """Predicts as its parent does, but its state counts calls to update: one batch and
    the same readings one at a time leave different states (a store would keep them)."""

    def update(self, observations: Columns) -> Self:
        self.n_batches_ = getattr(self, "n_batches_", 0) + 1
        return super().update(observations)

    def state(self) -> State:
        return {**super().state(), "n_batches_": np.array(getattr(self, "n_batches_", 0))}


class HidesItsInput(BayesianBasisRegression):
    """Reads ``flow`` like its parent but declares nothing: a twin would not check it."""

    @property
    def inputs(self) -> tuple[str, ...]:
        return ()


class HidesItsSpeed(MethodOfBins):
    """Reads ``wind_speed`` like its parent but declares nothing."""

    @property
    def inputs(self) -> tuple[str, ...]:
        return ()


class ForgetsSmoothing(BayesianBasisRegression):
    def get_params(self) -> dict[str, Any]:
        params = super().get_params()
        del params["smoothing"]
        return params


def overconfident() -> Overconfident:
    return Overconfident(**pump_emulator().get_params())


def test_the_shipped_emulators_pass() -> None:
    names = check_emulator(pump_emulator, PumpCurve(), settings=SMALL)
    assert names[0] == "clone" and names[-1] == "inputs" and len(names) == 9


def test_calibration_catches_overconfidence() -> None:
    with pytest.raises(ConformanceError, match=r"calibration: 50 % intervals covered"):
        run(check_calibration, overconfident, PumpCurve())


def test_calibration_catches_a_wrong_sequential_model() -> None:
    # The reservoir's gauge noise set 16 times too small: one-step intervals too narrow.
    def wrong() -> StateSpaceEmulator:
        params = reservoir_emulator().get_params()
        params["observation_noise"] = params["observation_noise"] / 16
        return StateSpaceEmulator(**params)

    with pytest.raises(ConformanceError, match=r"calibration: .* intervals covered"):
        run(check_calibration, wrong, ReservoirBalance())


def test_bounds_catch_an_uncensored_predictive() -> None:
    def unbounded() -> Unbounded:
        return Unbounded(**pump_emulator().get_params())

    with pytest.raises(ConformanceError, match=r"bounds: the predictive is censored to \[-inf"):
        run(check_bounds, unbounded, PumpCurve())


def test_units_catch_a_unit_unlike_the_schema() -> None:
    def in_watts() -> InWatts:
        return InWatts(**bins_emulator().get_params())

    with pytest.raises(ConformanceError, match=r"units: predictions are in 'W'.*'kW'"):
        run(check_units, in_watts, LinearPartLoad())


def test_inputs_catch_a_column_read_but_not_declared() -> None:
    def hiding() -> HidesItsInput:
        return HidesItsInput(**pump_emulator().get_params())

    blanked_raised = r"inputs: predicting with .*\['flow'\].* blanked raised"
    with pytest.raises(ConformanceError, match=blanked_raised):
        run(check_inputs, hiding, PumpCurve())

    def hiding_bins() -> HidesItsSpeed:
        return HidesItsSpeed(**bins_emulator().get_params())

    with pytest.raises(ConformanceError, match=r"inputs: predictions changed when .*wind_speed"):
        run(check_inputs, hiding_bins, LinearPartLoad())


def test_restore_and_branches_catch_shared_state() -> None:
    def sharing() -> SharesItsState:
        return SharesItsState(**bins_emulator().get_params())

    with pytest.raises(ConformanceError, match=r"restore: changing arrays returned by state"):
        run(check_restore, sharing, LinearPartLoad())
    with pytest.raises(ConformanceError, match=r"branch_isolation: updating a branch changed"):
        run(check_branch_isolation, sharing, LinearPartLoad())


def test_streaming_catches_dropped_readings() -> None:
    def skipping() -> SkipsSingleReadings:
        return SkipsSingleReadings(**bins_emulator().get_params())

    with pytest.raises(ConformanceError, match=r"streaming_equals_batch: n_observations_ 0"):
        run(check_streaming_equals_batch, skipping, LinearPartLoad())

    def counting() -> CountsItsBatches:
        return CountsItsBatches(**bins_emulator().get_params())

    with pytest.raises(ConformanceError, match=r"leave a state unlike .*: n_batches_: 1 vs 1000$"):
        run(check_streaming_equals_batch, counting, LinearPartLoad())


def test_clone_catches_incomplete_params_and_fitted_factories() -> None:
    def forgetful() -> ForgetsSmoothing:
        params = pump_emulator().get_params()
        params["smoothing"] = 10.0
        return ForgetsSmoothing(**params)

    with pytest.raises(ConformanceError, match=r"clone: a clone fitted on the same readings"):
        run(check_clone, forgetful, PumpCurve())

    def fitted() -> BayesianBasisRegression:
        return pump_emulator().update(PumpCurve().observations(10, 0))

    with pytest.raises(ConformanceError, match=r"clone: factory: expected an unfitted emulator"):
        run(check_clone, fitted, PumpCurve())


def test_provenance_catches_a_branch_writing_to_its_parent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class SharedRecorderTwin(Twin):
        def branch(self, *interventions: Any, name: str | None = None) -> Twin:
            child = super().branch(*interventions, name=name)
            child.recorder = self.recorder
            return child

    monkeypatch.setattr("twinweave.checks._checks.Twin", SharedRecorderTwin)
    with pytest.raises(ConformanceError, match=r"provenance: a branch wrote \d+ records"):
        run(check_provenance, pump_emulator, PumpCurve())


def test_check_emulator_lists_every_failure() -> None:
    with pytest.raises(ConformanceError, match=r"Overconfident failed 1 of 9 checks:\ncalibration"):
        check_emulator(overconfident, PumpCurve(), settings=SMALL)


def test_an_emulator_a_twin_refuses_fails_the_checks_that_build_a_twin() -> None:
    # Predicting in W where the schema says kW: the units check says so, and the checks
    # that build a Twin report the Twin's refusal instead of stopping the suite.
    def in_watts() -> BayesianBasisRegression:
        return BayesianBasisRegression(**{**pump_emulator().get_params(), "units": "W"})

    with pytest.raises(ConformanceError) as failed:
        check_emulator(in_watts, PumpCurve(), settings=SMALL)
    message = str(failed.value)
    assert "units: predictions are in 'W'" in message
    assert "branch_isolation: a Twin refuses the emulator" in message
    assert "provenance: a Twin refuses the emulator" in message


def test_checks_are_reproducible_and_independent_of_each_other() -> None:
    # A check's data come from its own seed: running one alone draws what it draws
    # within the suite.
    first = dict(yield_checks(pump_emulator, PumpCurve(), seed=3))
    second = dict(yield_checks(pump_emulator, PumpCurve(), seed=3))
    assert list(first) == list(second)
    problem = PumpCurve()
    no_streaming = dict(
        yield_checks(
            pump_emulator,
            types.SimpleNamespace(
                **{
                    "schema": problem.schema,
                    "sequential": False,
                    "streaming_rtol": None,
                    "observations": problem.observations,
                    "inputs": problem.inputs,
                }
            ),
        )  # type: ignore[arg-type]
    )
    assert "streaming_equals_batch" not in no_streaming and "calibration" in no_streaming


def test_an_unregistered_emulator_is_found() -> None:
    class NewEmulator(StateSpaceEmulator):
        """A new emulator class nobody registered a problem for."""

    module = types.ModuleType("fake_domain")
    module.NewEmulator = NewEmulator  # type: ignore[attr-defined]
    module.__all__ = ["NewEmulator"]  # type: ignore[attr-defined]
    assert unregistered_emulators([module]) == [NewEmulator]
    # Its parent's cases do not count for it.
    assert registered_cases(StateSpaceEmulator)
    assert registered_cases(NewEmulator) == ()


def test_register_rejects_what_cannot_be_checked() -> None:
    with pytest.raises(TypeError, match=r"factory: expected a callable returning"):
        register("nothing", lambda: object(), PumpCurve())  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match=r"problem: expected a twinweave.checks.SyntheticProblem"):
        register("no_problem", pump_emulator, object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"already has a case called 'pump'"):
        register("pump", pump_emulator, PumpCurve())


class LosesItsCount(MethodOfBins):
    """A restore with a bug of its own: it reads an entry its state never wrote."""

    @classmethod
    def from_state(cls, params: Mapping[str, Any], state: State) -> Self:
        return super().from_state(params, {k: v for k, v in state.items() if k != "count_"})


def test_an_emulators_own_error_is_listed_with_its_check_not_raised_alone() -> None:
    # Review: a KeyError from a user's from_state ended the run, no check named.
    def losing() -> LosesItsCount:
        return LosesItsCount(**bins_emulator().get_params())

    settings = Settings(n_train=300, n_test=300)
    with pytest.raises(ConformanceError) as caught:
        check_emulator(losing, LinearPartLoad(), settings=settings)
    message = str(caught.value)
    assert message.startswith("LosesItsCount failed ")
    assert "restore: raised KeyError" in message
    assert isinstance(caught.value.__cause__, KeyError)
