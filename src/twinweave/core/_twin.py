"""The twin: identity, schema, emulator and provenance; ``branch()`` for what-if work."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np

from twinweave.core._arguments import is_real
from twinweave.core._emulator import Columns, Emulator, check_columns, column
from twinweave.core._predictive import (
    CensoredNormal,
    ExponentialCorrelation,
    ResidualCorrelation,
    time_seconds,
)
from twinweave.core._schema import TwinSchema, same_unit
from twinweave.core._whatif import Derate, ScaleTarget, SetInputs, Stop


@runtime_checkable
class ProvenanceSink(Protocol):
    """Where a twin writes what it did (implemented by ``twinweave.provenance.Recorder``)."""

    def entity(self, kind: str, attributes: Mapping[str, Any] | None = None) -> str:
        """Record a new entity and return its identifier."""
        ...

    def record(
        self,
        activity: str,
        *,
        used: Sequence[str],
        generated: str,
        attributes: Mapping[str, Any] | None = None,
    ) -> str:
        """Record ``activity`` using entities ``used``; return the id of the new entity."""
        ...

    def fork(self) -> ProvenanceSink:
        """A recorder that sees this one's records but writes only to itself."""
        ...


@runtime_checkable
class Intervention(Protocol):
    """A what-if change applied by a branch: to the inputs, to the prediction, or both."""

    def apply_inputs(self, inputs: Columns) -> Columns: ...

    def apply_predictive(self, predictive: CensoredNormal) -> CensoredNormal: ...

    def describe(self) -> str: ...


def clone_emulator(emulator: Emulator) -> Emulator:
    """An independent copy with the same configuration and learned state."""
    return type(emulator).from_state(emulator.get_params(), emulator.state())


class Twin:
    """A probabilistic mirror of one asset.

    Parameters
    ----------
    twin_id
        Identity of the asset, for example the turbine's SCADA name.
    schema
        What the twin measures, with units and bounds.
    emulator
        The model that assimilates observations and predicts the target.
    recorder
        Provenance sink; ``None`` records nothing.
    residual_correlation
        Learns how the twin's residuals are correlated in time from the readings it
        assimilates (those with a ``time`` column); ``None`` treats them as independent.
        Use it with an emulator whose ``predict`` after ``update`` gives the fit to the
        readings assimilated (a regression), not a forecast beyond them: an emulator
        whose class says ``forecasts = True`` is refused.
    interventions
        What-if changes applied by a branch.
    parent
        The twin this one is a branch of.
    parent_id
        Identifier of the twin this one is a branch of; by default ``parent``'s. A
        branch restored by :meth:`~twinweave.data.Store.load_twin` has it without its
        ``parent``.

    Notes
    -----
    Inputs with a ``time`` column (datetimes, or seconds since the epoch) give
    predictions that carry their times and the learnt :attr:`noise_correlation_`, so
    sample paths of sums over time (a month's energy) are as uncertain as the twin's
    residuals say; marginals (mean, quantiles) do not depend on it.

    Examples
    --------
    >>> import numpy as np
    >>> from twinweave.core import Telemetry, TwinSchema, Derate
    >>> from twinweave.models import BayesianBasisRegression, SplineTerm
    >>> schema = TwinSchema(name="Pump", telemetry=[
    ...     Telemetry(name="flow", unit="m^3/h"),
    ...     Telemetry(name="power", unit="kW", lower=0, upper=50)])
    >>> emulator = BayesianBasisRegression(
    ...     target="power", terms=(SplineTerm("flow", 0, 10, 8),), noise_source="flow",
    ...     noise_edges=[0, 10], lower=0, upper=50, units="kW")
    >>> twin = Twin("pump-1", schema, emulator)
    >>> flow = np.linspace(0, 10, 200)
    >>> _ = twin.update({"flow": flow, "power": 4 * flow})
    >>> capped = twin.branch(Derate(20.0))
    >>> float(capped.predict({"flow": [9.0]}).quantile(0.99)[0])
    20.0
    >>> float(twin.predict({"flow": [9.0]}).mean[0]) > 30
    True

    A branch keeps its parent as it was; :meth:`updates_since` counts what the parent
    learned after it:

    >>> _ = twin.update({"flow": flow, "power": 4 * flow})
    >>> capped.updates_since(twin)
    1
    """

    def __init__(
        self,
        twin_id: str,
        schema: TwinSchema,
        emulator: Emulator,
        *,
        recorder: ProvenanceSink | None = None,
        residual_correlation: ResidualCorrelation | None = None,
        interventions: Sequence[Intervention] = (),
        parent: Twin | None = None,
        parent_id: str | None = None,
    ) -> None:
        if residual_correlation is not None and getattr(emulator, "forecasts", False):
            # Its predict after update forecasts beyond the readings; those would be taken
            # for the residuals of the readings (and its state carries their dynamics).
            raise ValueError(
                f"residual_correlation: expected None for a {type(emulator).__name__}, whose "
                "predictions are forecasts from its state, not a fit to the readings it "
                f"assimilated; got {type(residual_correlation).__name__}"
            )
        self.twin_id = twin_id
        self.schema = schema
        self._emulator = emulator
        self.recorder = recorder
        self.residual_correlation = residual_correlation
        self.interventions = tuple(interventions)
        self.parent = parent
        if parent is not None and parent_id not in (None, parent.twin_id):
            raise ValueError(
                f"parent_id: expected None or the parent's identifier {parent.twin_id!r}, "
                f"got {parent_id!r}"
            )
        self.parent_id = parent.twin_id if parent is not None else parent_id
        self._owns_emulator = parent is None
        # Batches assimilated by this object, and by its parent when it was branched:
        # what tells a branch that its parent has learned since (updates_since).
        self.n_updates_ = 0
        self._parent_updates_at_branch = 0 if parent is None else parent.n_updates_
        self.model_version_: str | None = None
        # Provenance id of the most recent prediction, to look its chain up later.
        self.last_prediction_: str | None = None
        self._check_target()
        for intervention in self.interventions:
            self._check_sets_no_balance(intervention)

    def _check_sets_no_balance(self, intervention: Intervention) -> None:
        """Refuse a setpoint on a target its inputs move from step to step (a
        reservoir's storage, a balance of its flows): clipping or scaling the storage
        makes water vanish rather than stay behind the dam. A forecaster without inputs
        (a local level of power) takes setpoints as any twin does."""
        inputs = self._declared_inputs()
        balance = getattr(self._emulator, "forecasts", False) and bool(inputs)
        if balance and isinstance(intervention, Derate | Stop | ScaleTarget):
            raise ValueError(
                f"{intervention.describe()}: sets the target, {self.target!r}, which this "
                f"twin carries from step to step as a balance of its inputs; it changes "
                f"through them, SetInputs({{...}}) of {list(inputs or [])}"
            )

    def _check_target(self) -> None:
        target = self._emulator.target
        names = [v.name for v in self.schema.telemetry]
        if target not in names:
            raise ValueError(
                f"twin {self.twin_id!r}: emulator target {target!r} is not a telemetry "
                f"variable of schema {self.schema.name!r} ({names})"
            )
        # The schema is what the twin promises: predictions in its unit, within its bounds.
        variable = self.schema.variable(target)
        units = getattr(self._emulator, "units", None)
        if isinstance(units, str) and not same_unit(units, variable.unit):
            raise ValueError(
                f"twin {self.twin_id!r}: the emulator predicts {target} in {units!r}, "
                f"expected the unit schema {self.schema.name!r} gives it, {variable.unit!r}"
            )
        lower, upper = variable.bounds
        own_lower = getattr(self._emulator, "lower", lower)
        own_upper = getattr(self._emulator, "upper", upper)
        if is_real(own_lower) and is_real(own_upper) and (own_lower < lower or own_upper > upper):
            raise ValueError(
                f"twin {self.twin_id!r}: the emulator bounds {target} to [{own_lower}, "
                f"{own_upper}], expected within the bounds schema {self.schema.name!r} "
                f"gives it, [{lower}, {upper}] (its predictions would leave them)"
            )

    @property
    def target(self) -> str:
        return self._emulator.target

    @property
    def is_branch(self) -> bool:
        """Whether this twin is a branch of another (it has a :attr:`parent_id`), also
        once saved and loaded again, when its :attr:`parent` is no longer at hand."""
        return self.parent_id is not None

    @property
    def noise_correlation_(self) -> ExponentialCorrelation | None:
        """Correlation in time of the residuals learnt so far; ``None``: independent."""
        learner = self.residual_correlation
        return None if learner is None else learner.correlation_

    def update(self, observations: Columns, *, source: str | None = None) -> Self:
        """Assimilate ``observations``; ``source`` is their provenance entity id.

        With a ``residual_correlation`` and a ``time`` column, the residuals of the
        readings under the updated emulator also refine the correlation in time. A
        target reading beyond the schema's bounds is the emulator's to take (a power
        curve takes it as at the bound: an idle turbine's auxiliary draw is 0 kW of
        output).

        Raises
        ------
        ValueError
            If an input the emulator reads lies outside its physical bounds, as in
            :meth:`predict` (:meth:`check_inputs`); the twin is then left as it was.
        """
        # Checked before the emulator learns anything: an error leaves the twin as it was.
        check_columns(observations, "observations")
        self.check_inputs(observations)
        correlation = self.residual_correlation if "time" in observations else None
        target = column(observations, self.target, required=False)
        if correlation is not None and target is not None:
            n_times = time_seconds(observations["time"]).size
            if n_times != target.size:
                raise ValueError(
                    f"time: expected {target.size} times (one per reading), got {n_times}"
                )
        self._own_emulator()
        self._emulator.update(observations)
        self.n_updates_ += 1
        if correlation is not None and target is not None and target.size > 1:
            correlation.update(self._emulator.predict(observations), target, observations["time"])
        if self.recorder is not None:
            used = [u for u in (source, self.model_version_) if u is not None]
            forgetting = getattr(self._emulator, "forgetting", None)
            self.model_version_ = self.recorder.record(
                "fit",
                used=used,
                generated="model_version",
                attributes={
                    "twin": self.twin_id,
                    "emulator": type(self._emulator).__name__,
                    "n_readings": 0 if target is None else int(target.size),
                    # With forgetting, less than the readings ever assimilated.
                    "weight_of_readings_held": self._emulator.n_observations_,
                    # What the weight depends on, where the emulator forgets.
                    **({"forgetting": forgetting} if forgetting is not None else {}),
                },
            )
        return self

    def predict(self, inputs: Columns, *, source: str | None = None) -> CensoredNormal:
        """Predictive distribution of the target; interventions of a branch applied.

        A ``time`` column in ``inputs`` gives the prediction its times and the twin's
        :attr:`noise_correlation_`.

        Raises
        ------
        ValueError
            If an input the emulator reads that is a telemetry variable of the schema
            (the target aside) lies outside its physical bounds (:meth:`check_inputs`);
            the message names the variable, how many values are outside, the first row
            and its value. Missing values (NaN) pass: optional inputs may be absent from
            some rows. Columns the emulator does not read are not checked.
        """
        for intervention in self.interventions:
            inputs = intervention.apply_inputs(inputs)
        # After the interventions: a hypothetical input is held to the bounds too.
        self.check_inputs(inputs)
        predictive = self._emulator.predict(inputs)
        if "time" in inputs:
            predictive = predictive.replace(
                times=time_seconds(inputs["time"]),
                correlation=self.noise_correlation_,
            )
        for intervention in self.interventions:
            predictive = intervention.apply_predictive(predictive)
        if self.recorder is not None:
            used = [u for u in (source, self.model_version_) if u is not None]
            self.last_prediction_ = self.recorder.record(
                "predict",
                used=used,
                generated="prediction",
                attributes={"twin": self.twin_id, "n_points": len(predictive)},
            )
        return predictive

    def check_inputs(self, inputs: Columns) -> None:
        """Reject inputs outside the schema's physical bounds, as :meth:`update` and
        :meth:`predict` do first: the emulator would learn or extrapolate from them
        without complaint (a negative wind speed, say). Columns the emulator does not
        read pass as they are (a raw export's other signals).

        Raises
        ------
        ValueError
            Naming the column, how many values are outside, the bounds with their unit,
            and the first such row and value.
        """
        check_columns(inputs, "inputs")
        declared = self._declared_inputs()
        read = None if declared is None else set(declared)
        for variable in self.schema.telemetry:
            name = variable.name
            if name == self.target or name not in inputs or (read is not None and name not in read):
                continue
            lower, upper = variable.bounds
            if lower == -np.inf and upper == np.inf:
                continue
            one = _one_value(inputs[name])
            # A streamed reading is decided in Python floats (NaN passes: not outside).
            if one is not None and not (one < lower or one > upper):
                continue
            values = column(inputs, name)
            if values is None or values.size == 0:
                continue
            # Two fast reductions decide almost every call; a NaN makes both comparisons
            # false and sends the column to the row-wise test, where NaN passes.
            if lower <= values.min() and values.max() <= upper:
                continue
            outside = (values < lower) | (values > upper)
            n_outside = int(np.count_nonzero(outside))
            if n_outside == 0:
                continue
            row = int(np.argmax(outside))
            unit = f" {variable.unit}" if variable.unit else ""
            raise ValueError(
                f"{name}: {n_outside} of {values.size} values outside the physical bounds "
                f"[{lower:.15g}, {upper:.15g}]{unit}; first at row {row}: {values[row]:.15g}"
            )

    def _declared_inputs(self) -> tuple[str, ...] | None:
        """The columns the emulator reads; ``None`` for an emulator written before the
        protocol declared them (then every bounded column is checked)."""
        declared: tuple[str, ...] | None = getattr(self._emulator, "inputs", None)
        return declared

    @property
    def emulator(self) -> Emulator:
        """The twin's emulator. A branch and its twin share one until either changes it;
        handed out, it may be changed by whoever holds it, so a twin that shares it
        first takes a copy of its own (the other twin is left as it was)."""
        self._own_emulator()
        return self._emulator

    def _own_emulator(self) -> None:
        if not self._owns_emulator:
            # Copy on first write: until now the emulator was shared with a branch.
            self._emulator = clone_emulator(self._emulator)
            self._owns_emulator = True

    def updates_since(self, ancestor: Twin) -> int | None:
        """How many batches ``ancestor`` has assimilated since this twin was branched
        from it (directly or through branches of branches); ``None`` if it is not an
        ancestor at hand (a branch restored from a store has no :attr:`parent`).

        Batches are counted by :meth:`update`; readings given to an emulator handed out
        by :attr:`emulator` are not seen. See the last lines of :class:`Twin`'s example.
        """
        for twin, n_updates in self._lineage():
            if twin is ancestor and twin is not self:
                return ancestor.n_updates_ - n_updates
        return None

    def _lineage(self) -> Iterator[tuple[Twin, int]]:
        """This twin and its ancestors at hand, each with the batches it had assimilated
        when this line left it (this twin: all it has assimilated)."""
        yield self, self.n_updates_
        link = self
        while link.parent is not None:
            yield link.parent, link._parent_updates_at_branch
            link = link.parent

    def branch(self, *interventions: Intervention, name: str | None = None) -> Twin:
        """A what-if copy: shares the emulator until it is updated (copy-on-write).

        The branch writes provenance to a fork of this twin's recorder, so neither this
        twin nor its store changes because of anything done to the branch.
        Interventions apply in the order given, each to what the one before made:
        ``branch(ScaleTarget(0.97), Derate(1500.0))`` is a 3 % loss under a 1500 kW
        cap (1500 kW where the wind allows), ``branch(Derate(1500.0),
        ScaleTarget(0.97))`` a capped curve scaled (at most 1455 kW).
        """
        if name is not None:
            self._check_branch_name(name)
        declared = self._declared_inputs()
        target = self.schema.variable(self.target)
        for intervention in interventions:
            # Refused now, not at the branch's first prediction.
            if isinstance(intervention, type) or not isinstance(intervention, Intervention):
                raise TypeError(
                    f"interventions: expected interventions such as Derate(1500.0), Stop() "
                    f"or SetInputs(...), got {intervention!r}"
                )
            # Before the branch is made: refused, it changes nothing of this twin.
            self._check_sets_no_balance(intervention)
            if isinstance(intervention, Derate):
                intervention.check_limit(target.bounds[0], target.unit)
            if declared is None or not isinstance(intervention, SetInputs):
                continue
            unread = sorted(set(intervention.values) - set(declared))
            if unread:
                raise ValueError(
                    f"SetInputs: the twin does not read {unread}, so setting them would "
                    f"change nothing; it reads {list(declared)}"
                )
        recorder = None if self.recorder is None else self.recorder.fork()
        # The emulator is now shared both ways: whichever twin updates first copies it,
        # so the parent assimilating new data does not change the branch either.
        self._owns_emulator = False
        child = Twin(
            name or f"{self.twin_id}/branch",
            self.schema,
            self._emulator,
            recorder=recorder,
            residual_correlation=(
                None if self.residual_correlation is None else self.residual_correlation.copy()
            ),
            interventions=(*self.interventions, *interventions),
            parent=self,
        )
        child.model_version_ = self.model_version_
        if recorder is not None:
            used = [] if self.model_version_ is None else [self.model_version_]
            child.model_version_ = recorder.record(
                "branch",
                used=used,
                generated="model_version",
                attributes={
                    "twin": child.twin_id,
                    "parent": self.twin_id,
                    "interventions": "; ".join(i.describe() for i in interventions),
                },
            )
        return child

    def _check_branch_name(self, name: object) -> None:
        """Refuse a branch name that is not text or that names this twin or an ancestor:
        saved, such a branch would become that twin's latest version and take its place
        in every later predict, monitor and what-if."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"name: expected a non-empty text naming the branch, got {name!r}")
        ancestors = [twin.twin_id for twin, _ in self._lineage()]
        if self.parent_id is not None:
            ancestors.append(self.parent_id)  # a restored branch's parent is not at hand
        if name in ancestors:
            raise ValueError(
                f"name: a branch cannot take the name {name!r} of the twin it branches from: "
                f"saved, it would become {name!r}'s latest version and replace the live twin; "
                f"expected another name, such as {name + '/whatif'!r}"
            )

    def __repr__(self) -> str:
        kind = "twin" if self.parent_id is None else f"branch of {self.parent_id}"
        return f"Twin({self.twin_id!r}, {kind}, emulator={self._emulator!r})"


def _one_value(value: object) -> float | None:
    """The value of a single number or one-element array; ``None`` for anything else."""
    if isinstance(value, float | int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "fiu":
        return float(value.item())
    return None
