"""The contracts every emulator meets, as checks that raise :class:`ConformanceError`.

Each check builds its own emulators from a factory, draws its own data from a
:class:`~twinweave.checks.SyntheticProblem` and says, when it fails, which contract broke
and by how much. The statistical check (calibration) compares the number of held-out
readings inside the predictive intervals with the number the predictive distributions
themselves expect, within a few binomial standard errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from twinweave.checks._problems import Seed, SyntheticProblem
from twinweave.core import CensoredNormal, Emulator, Twin, Variable, same_unit
from twinweave.provenance import Recorder

FloatArray = NDArray[np.float64]
EmulatorFactory = Callable[[], Emulator]


class ConformanceError(AssertionError):
    """An emulator broke a twinweave contract; the message names the check and the gap."""


@dataclass(frozen=True)
class Settings:
    """Sizes and tolerances of the checks.

    Parameters
    ----------
    n_train
        Readings an emulator assimilates before it is checked.
    n_test
        Held-out readings for calibration (and points for the other checks).
    levels
        Central interval probabilities whose coverage is checked.
    n_se
        Allowed distance of observed from expected coverage, in binomial standard errors.
    """

    n_train: int = 2000
    n_test: int = 2000
    levels: tuple[float, ...] = (0.5, 0.9)
    n_se: float = 3.0


CheckFunction = Callable[[EmulatorFactory, SyntheticProblem, np.random.Generator, Settings], None]


# -- helpers ---------------------------------------------------------------------------------
def _fail(check: str, message: str) -> ConformanceError:
    return ConformanceError(f"{check}: {message}")


def _length(data: Mapping[str, ArrayLike]) -> int:
    return max(int(np.atleast_1d(np.asarray(v)).shape[0]) for v in data.values())


def _rows(data: Mapping[str, ArrayLike], lo: int, hi: int) -> dict[str, FloatArray]:
    return {
        name: np.atleast_1d(np.asarray(value, dtype=np.float64))[lo:hi]
        for name, value in data.items()
    }


def _reading(data: Mapping[str, ArrayLike], row: int) -> dict[str, float]:
    """One reading as a dict of floats: the smallest stream the protocol allows."""
    return {
        name: float(np.atleast_1d(np.asarray(value, dtype=np.float64))[row])
        for name, value in data.items()
    }


def _close(a: FloatArray, b: FloatArray, rtol: float) -> bool:
    if a.shape != b.shape:
        return False
    if rtol == 0.0:
        return bool(np.array_equal(a, b))
    scale = float(np.max(np.abs(a))) if a.size else 0.0
    return bool(np.allclose(a, b, rtol=rtol, atol=rtol * scale))


def _predictive_difference(a: CensoredNormal, b: CensoredNormal, rtol: float) -> str | None:
    """How ``b`` differs from ``a`` (``None`` if it does not, within ``rtol``)."""
    if (a.units, a.lower, a.upper) != (b.units, b.lower, b.upper):
        return (
            f"units and bounds {a.units!r} [{a.lower}, {a.upper}] vs "
            f"{b.units!r} [{b.lower}, {b.upper}]"
        )
    for name in ("loc", "noise_var", "latent_var"):
        left, right = getattr(a, name), getattr(b, name)
        if not _close(left, right, rtol):
            worst = int(np.argmax(np.abs(left - right))) if left.shape == right.shape else 0
            return (
                f"{name} differs (relative tolerance {rtol:g}): point {worst} has "
                f"{float(left.ravel()[worst])!r} vs {float(right.ravel()[worst])!r}"
            )
    if rtol == 0.0:
        if (a.factor is None) != (b.factor is None):
            return "one has a shared factor, the other none"
        if a.factor is not None and b.factor is not None and not _close(a.factor, b.factor, 0.0):
            return "the shared factor differs"
    return None


def _same_value(a: Any, b: Any) -> bool:
    """Deep equality for parameters and states (arrays compared exactly, NaN equal)."""
    if a is b:
        return True
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a_arr, b_arr = np.asarray(a), np.asarray(b)
        if a_arr.shape != b_arr.shape or a_arr.dtype.kind != b_arr.dtype.kind:
            return False
        return bool(np.array_equal(a_arr, b_arr, equal_nan=a_arr.dtype.kind in "fc"))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same_value(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def _fitted(
    factory: EmulatorFactory, problem: SyntheticProblem, rng: np.random.Generator, n: int
) -> Emulator:
    return factory().update(problem.observations(n, rng))


def _target_variable(check: str, problem: SyntheticProblem, emulator: Emulator) -> Variable:
    try:
        return problem.schema.variable(emulator.target)
    except KeyError:
        raise _fail(
            check,
            f"target {emulator.target!r} is not a variable of the problem's schema "
            f"{problem.schema.name!r}",
        ) from None


# -- the checks ------------------------------------------------------------------------
def check_clone(
    factory: EmulatorFactory,
    problem: SyntheticProblem,
    rng: np.random.Generator,
    settings: Settings,
) -> None:
    """``type(e)(**e.get_params())`` is an unfitted emulator configured like ``e``.

    Fitted on the same readings, the clone predicts bit-identically, and fitting it
    leaves the original untouched.
    """
    emulator = factory()
    if not isinstance(emulator, Emulator):
        raise _fail("clone", f"{type(emulator).__name__} does not meet the Emulator protocol")
    if emulator.n_observations_ != 0:
        raise _fail(
            "clone",
            f"factory: expected an unfitted emulator (n_observations_ == 0), got "
            f"n_observations_={emulator.n_observations_}",
        )
    data = problem.observations(settings.n_train, rng)
    inputs = problem.inputs(settings.n_test, rng)
    emulator.update(data)
    before = emulator.predict(inputs)
    params = emulator.get_params()
    clone = type(emulator)(**params)
    if clone.n_observations_ != 0:
        raise _fail(
            "clone",
            f"type(e)(**e.get_params()) has n_observations_={clone.n_observations_}; expected "
            "0 (configuration only, no learned state)",
        )
    if not _same_value(params, clone.get_params()):
        changed = sorted(k for k in params if not _same_value(params[k], clone.get_params()[k]))
        raise _fail("clone", f"the clone's get_params() differs from the original's in {changed}")
    clone.update(data)
    difference = _predictive_difference(before, clone.predict(inputs), 0.0)
    if difference is not None:
        raise _fail(
            "clone", f"a clone fitted on the same readings predicts differently: {difference}"
        )
    difference = _predictive_difference(before, emulator.predict(inputs), 0.0)
    if difference is not None:
        raise _fail("clone", f"fitting the clone changed the original's predictions: {difference}")


def check_restore(
    factory: EmulatorFactory,
    problem: SyntheticProblem,
    rng: np.random.Generator,
    settings: Settings,
) -> None:
    """``from_state(get_params(), state())`` predicts and continues bit-identically.

    Also: ``state()`` returns copies, and the restored emulator keeps none of the arrays
    it was given.
    """
    emulator = _fitted(factory, problem, rng, settings.n_train)
    inputs = problem.inputs(settings.n_test, rng)
    expected = emulator.predict(inputs)
    state = emulator.state()
    restored = type(emulator).from_state(emulator.get_params(), state)
    difference = _predictive_difference(expected, restored.predict(inputs), 0.0)
    if difference is not None:
        raise _fail("restore", f"the restored emulator predicts differently: {difference}")
    if restored.n_observations_ != emulator.n_observations_:
        raise _fail(
            "restore",
            f"n_observations_ {restored.n_observations_} after restore, expected "
            f"{emulator.n_observations_}",
        )
    if not _same_value(restored.state(), emulator.state()):
        raise _fail("restore", "state() of the restored emulator differs from the original's")
    # Scribble over the state arrays handed out and taken in: neither emulator may care.
    for scribbled in (state, emulator.state()):
        for value in scribbled.values():
            if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                value[...] = np.nan
    for who, model in (("original", emulator), ("restored", restored)):
        try:
            difference = _predictive_difference(expected, model.predict(inputs), 0.0)
        except Exception as error:  # any failure here shows the arrays are shared
            difference = f"predict raised {type(error).__name__}: {error}"
        if difference is not None:
            raise _fail(
                "restore",
                f"changing arrays returned by state() or passed to from_state() changed the "
                f"{who} emulator: {difference}",
            )
    more = problem.observations(settings.n_train // 4, rng)
    emulator.update(more)
    restored.update(more)
    difference = _predictive_difference(emulator.predict(inputs), restored.predict(inputs), 0.0)
    if difference is not None:
        raise _fail("restore", f"original and restored diverge after the same update: {difference}")


def check_streaming_equals_batch(
    factory: EmulatorFactory,
    problem: SyntheticProblem,
    rng: np.random.Generator,
    settings: Settings,
) -> None:
    """One batch and the same readings one at a time give the same predictions and the
    same state.

    Within ``problem.streaming_rtol`` (0: bit-identical); skipped when ``None``.
    """
    rtol = problem.streaming_rtol
    if rtol is None:
        return
    n = min(settings.n_train, 1000)
    data = problem.observations(n, rng)
    inputs = problem.inputs(settings.n_test, rng)
    batch = factory().update(data)
    stream = factory()
    for row in range(n):
        stream.update(_reading(data, row))
    if not _close(np.array([batch.n_observations_]), np.array([stream.n_observations_]), rtol):
        raise _fail(
            "streaming_equals_batch",
            f"n_observations_ {stream.n_observations_} streamed vs {batch.n_observations_} "
            "in one batch",
        )
    difference = _predictive_difference(batch.predict(inputs), stream.predict(inputs), rtol)
    if difference is not None:
        raise _fail(
            "streaming_equals_batch",
            f"{n} readings one at a time predict unlike one batch of them: {difference}",
        )
    # The state too, which a store keeps: a part no prediction reads could differ.
    difference = _state_difference(batch.state(), stream.state(), rtol)
    if difference is not None:
        raise _fail(
            "streaming_equals_batch",
            f"{n} readings one at a time leave a state unlike one batch of them: {difference}",
        )


def _state_difference(a: Mapping[str, Any], b: Mapping[str, Any], rtol: float) -> str | None:
    """The first entry of state ``b`` that differs from ``a``'s beyond ``rtol`` (NaN equal
    to NaN, infinities to themselves); ``None`` if none does."""
    if a.keys() != b.keys():
        return f"keys {sorted(a)} vs {sorted(b)}"
    for key in a:
        left, right = np.asarray(a[key]), np.asarray(b[key])
        if left.dtype.kind not in "fiu" or right.dtype.kind not in "fiu":
            if not _same_value(a[key], b[key]):
                return f"{key}: {a[key]!r} vs {b[key]!r}"
            continue
        if left.shape != right.shape:
            return f"{key}: shape {left.shape} vs {right.shape}"
        finite = np.abs(left[np.isfinite(left)])
        scale = float(finite.max()) if finite.size else 0.0
        if not np.allclose(left, right, rtol=rtol, atol=rtol * scale, equal_nan=True):
            worst = int(np.nanargmax(np.abs(left - right)))
            where = f" (flat index {worst})" if left.size > 1 else ""
            return f"{key}: {left.flat[worst].item()!r} vs {right.flat[worst].item()!r}{where}"
    return None


def _twin(
    check: str,
    problem: SyntheticProblem,
    factory: EmulatorFactory,
    recorder: Recorder | None = None,
) -> Twin:
    """A twin of the problem's schema on a new emulator; a twin's refusal of the emulator
    (a unit or bounds its schema does not allow) fails the check rather than the suite."""
    try:
        return Twin("conformance", problem.schema, factory(), recorder=recorder)
    except ValueError as error:
        raise _fail(check, f"a Twin refuses the emulator: {error}") from None


def check_branch_isolation(
    factory: EmulatorFactory,
    problem: SyntheticProblem,
    rng: np.random.Generator,
    settings: Settings,
) -> None:
    """Updating a branch leaves its parent's predictions bit-identical, and vice versa.

    Vice versa includes a branch that has not been updated yet and so still shares its
    parent's emulator (copy-on-write both ways).
    """
    twin = _twin("branch_isolation", problem, factory)
    twin.update(problem.observations(settings.n_train, rng))
    inputs = problem.inputs(settings.n_test, rng)
    base = twin.predict(inputs)
    branch = twin.branch()
    difference = _predictive_difference(base, branch.predict(inputs), 0.0)
    if difference is not None:
        raise _fail("branch_isolation", f"a new branch predicts unlike its parent: {difference}")
    branch.update(problem.observations(settings.n_train // 2, rng))
    difference = _predictive_difference(base, twin.predict(inputs), 0.0)
    if difference is not None:
        raise _fail(
            "branch_isolation", f"updating a branch changed its parent's predictions: {difference}"
        )
    branched = branch.predict(inputs)
    if _predictive_difference(base, branched, 0.0) is None:
        raise _fail(
            "branch_isolation",
            f"updating a branch with {settings.n_train // 2} readings left its predictions "
            "unchanged, so isolation cannot be told from an update that does nothing",
        )
    # A branch that has not written yet still shares its parent's emulator: the parent
    # updating must not change it either, nor the branch that has written.
    idle = twin.branch()
    twin.update(problem.observations(settings.n_train // 2, rng))
    for who, child, expected in (("an idle", idle, base), ("an updated", branch, branched)):
        difference = _predictive_difference(expected, child.predict(inputs), 0.0)
        if difference is not None:
            raise _fail(
                "branch_isolation",
                f"updating the parent changed {who} branch's predictions: {difference}",
            )


def check_units(
    factory: EmulatorFactory,
    problem: SyntheticProblem,
    rng: np.random.Generator,
    settings: Settings,
) -> None:
    """Predictions carry the unit the schema gives the target."""
    emulator = _fitted(factory, problem, rng, settings.n_train)
    variable = _target_variable("units", problem, emulator)
    predictive = emulator.predict(problem.inputs(settings.n_test, rng))
    if not isinstance(predictive, CensoredNormal):
        raise _fail(
            "units", f"predict returned {type(predictive).__name__}, expected CensoredNormal"
        )
    try:
        same = same_unit(predictive.units, variable.unit)
    except ValueError as error:
        raise _fail("units", str(error)) from None
    if not same:
        raise _fail(
            "units",
            f"predictions are in {predictive.units!r}; the schema gives {variable.name} in "
            f"{variable.unit!r}",
        )


def check_inputs(
    factory: EmulatorFactory,
    problem: SyntheticProblem,
    rng: np.random.Generator,
    settings: Settings,
) -> None:
    """Predictions read no column beyond ``inputs``: with every other column's values
    made NaN, and an unrelated column added, they do not change. A twin checks only the
    declared inputs against its schema's bounds, so an undeclared one would go unchecked.
    """
    emulator = _fitted(factory, problem, rng, settings.n_train)
    declared = emulator.inputs
    if not (isinstance(declared, tuple) and all(isinstance(n, str) for n in declared)):
        raise _fail("inputs", f"expected a tuple of column names, got {declared!r}")
    inputs = problem.inputs(settings.n_test, rng)
    # A column's length may still set the number of steps; its values are not to be read.
    blanked: dict[str, ArrayLike] = {
        name: value if name in declared else np.full(np.shape(value), np.nan)
        for name, value in inputs.items()
    }
    blanked["not_an_input"] = np.full(_length(inputs), np.nan)
    expected = emulator.predict(inputs)
    undeclared = f"the columns it does not declare ({sorted(set(inputs) - set(declared))}; "
    undeclared += f"it declares {list(declared)})"
    try:
        difference = _predictive_difference(expected, emulator.predict(blanked), 0.0)
    except (ValueError, KeyError) as error:
        raise _fail("inputs", f"predicting with {undeclared} blanked raised {error!r}") from None
    if difference is not None:
        raise _fail("inputs", f"predictions changed when {undeclared} were blanked: {difference}")


def check_bounds(
    factory: EmulatorFactory,
    problem: SyntheticProblem,
    rng: np.random.Generator,
    settings: Settings,
) -> None:
    """No quantile or sample lies outside the target's physical bounds."""
    emulator = _fitted(factory, problem, rng, settings.n_train)
    variable = _target_variable("bounds", problem, emulator)
    lower, upper = variable.bounds
    predictive = emulator.predict(problem.inputs(settings.n_test, rng))
    if predictive.lower < lower or predictive.upper > upper:
        raise _fail(
            "bounds",
            f"the predictive is censored to [{predictive.lower}, {predictive.upper}], wider "
            f"than {variable.name}'s bounds [{lower}, {upper}]",
        )
    quantiles = predictive.quantile([0.001, 0.05, 0.5, 0.95, 0.999])
    samples = predictive.sample(50, rng)
    for what, values in (("quantile", quantiles), ("sample", samples)):
        outside = (values < lower) | (values > upper)
        if outside.any():
            raise _fail(
                "bounds",
                f"a {what} {values[outside][0]!r} lies outside {variable.name}'s bounds "
                f"[{lower}, {upper}]",
            )


def check_calibration(
    factory: EmulatorFactory,
    problem: SyntheticProblem,
    rng: np.random.Generator,
    settings: Settings,
) -> None:
    """Central intervals cover held-out truth as often as they claim to.

    The claim is the interval's probability under the predictive itself (``level`` for a
    continuous one, more where a bound carries mass). The count of covered readings is
    compared with the sum of the claims, in units of the binomial standard error
    ``sqrt(sum p (1 - p))``. A sequential emulator forecasts each held-out reading one
    step ahead and then assimilates it.
    """
    data = problem.observations(settings.n_train + settings.n_test, rng)
    emulator = factory().update(_rows(data, 0, settings.n_train))
    held_out = _rows(data, settings.n_train, settings.n_train + settings.n_test)
    y = held_out[emulator.target]
    if problem.sequential:
        steps = []
        for row in range(settings.n_test):
            reading = _rows(held_out, row, row + 1)
            steps.append(emulator.predict(reading))
            emulator.update(reading)
        predictive = CensoredNormal.concatenate(steps)
    else:
        predictive = emulator.predict(held_out)
    failures = []
    for level in settings.levels:
        lo, hi = predictive.interval(level)
        covered = (y >= lo) & (y <= hi)
        claimed = predictive.probability_between(lo, hi)
        se = float(np.sqrt(np.sum(claimed * (1.0 - claimed))))
        gap = float(covered.sum() - claimed.sum())
        if abs(gap) > settings.n_se * max(se, 1.0):
            n = y.shape[0]
            failures.append(
                f"{100 * level:g} % intervals covered {100 * covered.mean():.1f} % of {n} "
                f"held-out readings; the predictive claims {100 * claimed.mean():.1f} % "
                f"+- {100 * settings.n_se * se / n:.1f} % ({settings.n_se:g} s.e.)"
            )
    if failures:
        raise _fail("calibration", "; ".join(failures))


def check_provenance(
    factory: EmulatorFactory,
    problem: SyntheticProblem,
    rng: np.random.Generator,
    settings: Settings,
) -> None:
    """A twin with a recorder records its fit and its prediction; its branch writes to a fork."""
    recorder = Recorder()
    data = problem.observations(settings.n_train, rng)
    source = recorder.entity("observations", {"n_rows": _length(data)})
    twin = _twin("provenance", problem, factory, recorder)
    twin.update(data, source=source)
    version = twin.model_version_
    entity = None if version is None else recorder.get(version)
    fit = (
        None if entity is None or entity.generated_by is None else recorder.get(entity.generated_by)
    )
    if fit is None or fit.kind != "fit":
        raise _fail("provenance", "Twin.update recorded no fit activity generating a model version")
    if source not in fit.used:
        raise _fail("provenance", f"the fit does not record using its readings {source!r}")
    recorded = (fit.attributes.get("n_readings"), fit.attributes.get("weight_of_readings_held"))
    if recorded != (_length(data), twin.emulator.n_observations_):
        raise _fail(
            "provenance",
            f"the fit records n_readings={recorded[0]!r} and weight_of_readings_held="
            f"{recorded[1]!r}; expected the {_length(data)} readings given and the "
            f"emulator's n_observations_ {twin.emulator.n_observations_}",
        )
    inputs = problem.inputs(settings.n_test, rng)
    predictive = twin.predict(inputs)
    predictions = [
        r for r in recorder.records() if r.category == "activity" and r.kind == "predict"
    ]
    if len(predictions) != 1 or version not in predictions[0].used:
        raise _fail(
            "provenance",
            f"expected one predict activity using model version {version!r}, got "
            f"{[(r.id, r.used) for r in predictions]}",
        )
    if predictions[0].attributes.get("n_points") != len(predictive):
        raise _fail(
            "provenance",
            f"the prediction records n_points={predictions[0].attributes.get('n_points')!r}, "
            f"it has {len(predictive)}",
        )
    n_records = len(recorder.records())
    branch = twin.branch()
    branch.update(problem.observations(settings.n_train // 4, rng))
    branch.predict(inputs)
    if len(recorder.records()) != n_records:
        raise _fail(
            "provenance",
            f"a branch wrote {len(recorder.records()) - n_records} records to its parent's "
            "recorder; it should write to a fork",
        )


#: The checks, in the order they run.
CHECKS: tuple[tuple[str, CheckFunction], ...] = (
    ("clone", check_clone),
    ("restore", check_restore),
    ("streaming_equals_batch", check_streaming_equals_batch),
    ("branch_isolation", check_branch_isolation),
    ("units", check_units),
    ("bounds", check_bounds),
    ("calibration", check_calibration),
    ("provenance", check_provenance),
    # Last, so that adding it left the other checks' random streams as they were.
    ("inputs", check_inputs),
)


def _seed_sequence(seed: Seed) -> np.random.SeedSequence:
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence(int(seed.integers(2**63)))
    return np.random.SeedSequence(seed)


def yield_checks(
    factory: EmulatorFactory,
    problem: SyntheticProblem,
    *,
    seed: Seed = 0,
    settings: Settings | None = None,
) -> Iterator[tuple[str, Callable[[], None]]]:
    """The applicable checks as ``(name, run)`` pairs, for a test runner to parametrise.

    Each ``run()`` draws from its own seed (spawned from ``seed`` by the check's position
    in :data:`CHECKS`), so a check's data do not depend on which others run.
    ``streaming_equals_batch`` is left out when the problem promises nothing.

    Examples
    --------
    >>> from twinweave.checks import RandomWalkTemperature, temperature_emulator
    >>> [name for name, _ in yield_checks(temperature_emulator, RandomWalkTemperature())]
    ... # doctest: +NORMALIZE_WHITESPACE
    ['clone', 'restore', 'streaming_equals_batch', 'branch_isolation', 'units', 'bounds',
     'calibration', 'provenance', 'inputs']
    """
    chosen = Settings() if settings is None else settings
    children = _seed_sequence(seed).spawn(len(CHECKS))
    for (name, check), child in zip(CHECKS, children, strict=True):
        if name == "streaming_equals_batch" and problem.streaming_rtol is None:
            continue

        def run(check: CheckFunction = check, child: np.random.SeedSequence = child) -> None:
            check(factory, problem, np.random.default_rng(child), chosen)

        yield name, run


def check_emulator(
    factory: EmulatorFactory,
    problem: SyntheticProblem,
    *,
    seed: Seed = 0,
    settings: Settings | None = None,
) -> list[str]:
    """Run every applicable check; return their names.

    Raises
    ------
    ConformanceError
        Listing every check that failed, each with its reason; a check the emulator
        broke with an error of its own (a bug in its ``from_state``, say) is listed with
        that error, and the error of the first such check is the exception's cause.
    """
    ran: list[str] = []
    failures: list[str] = []
    first_error: Exception | None = None
    for name, run in yield_checks(factory, problem, seed=seed, settings=settings):
        ran.append(name)
        try:
            run()
        except ConformanceError as error:
            failures.append(str(error))
        except Exception as error:  # the emulator's own bug: named with its check
            failures.append(f"{name}: raised {type(error).__name__}: {error}")
            first_error = first_error or error
    if failures:
        raise ConformanceError(
            f"{type(factory()).__name__} failed {len(failures)} of {len(ran)} checks:\n"
            + "\n".join(failures)
        ) from first_error
    return ran
