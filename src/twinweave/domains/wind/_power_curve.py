"""Wind turbine power curves: the twin's emulator and the IEC 61400-12-1 baseline.

Air density enters through the IEC 61400-12-1:2017 normalisation of wind speed for
pitch-regulated turbines (clause 9.1.5), ``V_n = V (rho / rho_ref)^(1/3)``, with density
from temperature and pressure by the ideal-gas law for dry air (clause 9.1.5, equation
12, R = 287.05 J/(kg K)). Site pressure, when not measured, comes from the ISO 2533
standard atmosphere at the site's elevation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import NDArray

from twinweave.core import CensoredNormal, Columns, State, Telemetry, TwinSchema
from twinweave.core._schema import Property
from twinweave.models import (
    BasisTerm,
    BayesianBasisRegression,
    Centred,
    Harmonics,
    ModulatedSpline,
    SplineTerm,
)
from twinweave.models._basis import read_input

FloatArray = NDArray[np.float64]

#: IEC 61400-12-1 reference air density [kg/m^3].
REFERENCE_DENSITY = 1.225
#: Specific gas constant of dry air [J/(kg K)].
GAS_CONSTANT_DRY_AIR = 287.05


def pressure_at_elevation(elevation: float) -> float:
    """Standard-atmosphere pressure [Pa] at ``elevation`` [m] (ISO 2533:1975).

    Examples
    --------
    >>> round(pressure_at_elevation(411.0))
    96484
    """
    return float(101325.0 * (1.0 - 2.25577e-5 * elevation) ** 5.25588)


def air_density(temp_air: FloatArray, pressure: FloatArray | float) -> FloatArray:
    """Dry-air density [kg/m^3] from ``temp_air`` [degC] and ``pressure`` [Pa]."""
    return np.asarray(pressure / (GAS_CONSTANT_DRY_AIR * (temp_air + 273.15)), dtype=np.float64)


@dataclass(frozen=True)
class NormalisedWindSpeed:
    """Density-normalised wind speed [m/s] (IEC 61400-12-1:2017, clause 9.1.5).

    Density is read from ``air_density`` when present, else computed from ``temp_air``
    and ``pressure`` (or the site pressure). Where neither is available, or a value is
    missing, ``fallback_density`` is used: pass the site's mean density so a prediction
    from wind speed alone is the density-averaged curve.
    """

    site_pressure: float
    fallback_density: float = REFERENCE_DENSITY
    reference_density: float = REFERENCE_DENSITY

    #: Settings of a turbine's site, not of what the input means: twins of one fleet
    #: at other sites share a basis (:func:`~twinweave.models._basis.canonical_text`).
    site_settings: ClassVar[tuple[str, ...]] = ("site_pressure", "fallback_density")

    @property
    def name(self) -> str:
        return "wind_speed_normalised"

    @property
    def sources(self) -> tuple[str, ...]:
        return ("wind_speed", "air_density", "temp_air", "pressure")

    def density(self, data: Columns, n_rows: int) -> FloatArray:
        rho = read_input(data, "air_density")
        if rho is None:
            temp = read_input(data, "temp_air")
            if temp is not None:
                pressure = read_input(data, "pressure")
                rho = air_density(temp, self.site_pressure if pressure is None else pressure)
        if rho is None:
            return np.full(n_rows, self.fallback_density)
        rho = np.broadcast_to(rho, (n_rows,))
        return np.where(np.isfinite(rho), rho, self.fallback_density)

    def __call__(self, data: Columns) -> FloatArray | None:
        single = self._single(data)
        if single is not None:
            return np.array([single])
        speed = read_input(data, "wind_speed")
        if speed is None:
            return None
        # The spline would read a negative speed as 0 m/s and predict without a word.
        flat = np.ravel(speed)
        negative = np.flatnonzero(flat < 0.0)
        if negative.size:
            _refuse_negative(float(flat[negative[0]]), int(negative[0]))
        rho = self.density(data, speed.shape[0])
        return np.asarray(speed * np.cbrt(rho / self.reference_density), dtype=np.float64)

    def _single(self, data: Columns) -> float | None:
        """The same for one reading given as Python numbers (a stream), without arrays:
        numpy's per-call overhead would dominate a single update. ``None`` when the
        reading is not given as numbers."""
        speed = data.get("wind_speed")
        if not isinstance(speed, float | int):
            return None
        if speed < 0.0:
            _refuse_negative(float(speed), 0)
        rho: object = data.get("air_density")
        if rho is None:
            temp = data.get("temp_air")
            pressure = data.get("pressure", self.site_pressure)
            if temp is None:
                rho = self.fallback_density
            elif isinstance(temp, float | int) and isinstance(pressure, float | int):
                rho = pressure / (GAS_CONSTANT_DRY_AIR * (temp + 273.15))
            else:
                return None
        if not isinstance(rho, float | int):
            return None
        if not math.isfinite(rho):
            rho = self.fallback_density
        # NumPy's cbrt on a Python float gives the batch path's values; math.cbrt and
        # ** (1 / 3) differ from it in the last bit for some.
        return float(speed) * float(np.cbrt(rho / self.reference_density))


def _refuse_negative(speed: float, row: int) -> None:
    raise ValueError(f"wind_speed: expected speeds >= 0 m/s, got {speed:g} first at row {row}")


def generic_power_curve(
    wind_speed: FloatArray,
    rated_power: float,
    *,
    cut_in: float = 3.0,
    rated_wind_speed: float = 13.0,
) -> FloatArray:
    """A generic power curve [kW]: zero below cut-in, rising with the cube of wind speed
    [m/s] to rated power at ``rated_wind_speed``, flat above.

    Power in the wind grows with the cube of its speed (Manwell, McGowan and Rogers,
    *Wind Energy Explained*, 2nd ed., 2009, section 2.2); the twin uses this only as a
    weak prior, which matters where it has no data (above the strongest wind seen).

    Examples
    --------
    >>> generic_power_curve(np.array([2.0, 13.0, 20.0]), 2050.0).tolist()
    [0.0, 2050.0, 2050.0]
    """
    ramp = (wind_speed**3 - cut_in**3) / (rated_wind_speed**3 - cut_in**3)
    return np.asarray(rated_power * np.clip(ramp, 0.0, 1.0), dtype=np.float64)


def turbine_schema(
    rated_power: float, *, elevation: float = 0.0, name: str = "WindTurbine"
) -> TwinSchema:
    """Schema of a turbine twin: SCADA telemetry with units and physical bounds, and the
    asset's rated power [kW] and site elevation [m] as properties."""
    return TwinSchema(
        name=name,
        description="Wind turbine twin from 10-minute SCADA averages",
        telemetry=(
            Telemetry(name="wind_speed", unit="m/s", lower=0, upper=60),
            Telemetry(name="power", unit="kW", lower=0, upper=rated_power),
            Telemetry(name="temp_air", unit="degC", lower=-60, upper=60),
            Telemetry(name="wind_direction", unit="degree", lower=0, upper=360),
            Telemetry(name="pitch", unit="degree", lower=-10, upper=130),
            # Inputs of the density normalisation (IEC 61400-12-1 clause 9.1.5). Wide
            # physical bounds (sea level to 5,000 m, -60 to 60 degC): a pressure in hPa
            # or a density in g/m^3 is refused instead of predicting about 0 kW.
            Telemetry(name="air_density", unit="kg/m^3", lower=0.5, upper=2.0),
            Telemetry(name="pressure", unit="Pa", lower=50_000, upper=110_000),
        ),
        properties=(
            # Described here, not in the glossary: the glossary lists what a data
            # file's columns may hold, and these are no readings.
            Property(
                name="rated_power",
                unit="kW",
                lower=0,
                value=rated_power,
                description="rated (nameplate) active power of the turbine",
            ),
            Property(
                name="elevation",
                unit="m",
                lower=-500,
                upper=9000,
                value=elevation,
                description="site elevation above mean sea level",
            ),
        ),
    )


def power_curve_emulator(
    rated_power: float,
    *,
    site_pressure: float = 101325.0,
    fallback_density: float = REFERENCE_DENSITY,
    use_direction: bool = True,
    use_temperature: bool = True,
    forgetting: float = 1.0,
    cut_out: float = 25.0,
) -> BayesianBasisRegression:
    """The turbine twin's emulator: a P-spline power curve with binned noise.

    Parameters
    ----------
    rated_power
        Upper bound of power [kW]; predictions are censored to ``[0, rated_power]``.
    site_pressure
        Pressure [Pa] used for density when none is measured.
    fallback_density
        Density [kg/m^3] used when temperature is missing (the site mean).
    use_direction
        Let the curve vary with wind direction (wakes, terrain), through Fourier terms
        modulating a coarse spline of wind speed.
    use_temperature
        Let the curve vary with temperature beyond the density effect (a linear
        modulation of a coarse spline).
    forgetting
        Per-reading discount; ``1 - 1/52560`` remembers about a year of 10-minute data.
    cut_out
        Upper end of the spline's knots [m/s].

    Notes
    -----
    The weights' prior mean is :func:`generic_power_curve`, so where the twin has seen
    no wind (above about 19 m/s at La Haute Borne) it predicts rated power with wide
    uncertainty instead of falling back to zero.

    A prediction without direction or temperature averages their effect over the
    readings assimilated at about the same wind speed and widens the interval by its
    spread (:meth:`~twinweave.models.BayesianBasisRegression.predict`). Density is not
    averaged the same way: without temperature it is ``fallback_density``.
    """
    speed = NormalisedWindSpeed(site_pressure, fallback_density)
    main = SplineTerm(speed, 0.0, cut_out, round(2 * cut_out))
    coarse = SplineTerm(speed, 0.0, cut_out, 5)
    terms: list[BasisTerm] = [main]
    if use_direction:
        terms.append(ModulatedSpline(coarse, Harmonics("wind_direction", 2)))
    if use_temperature:
        terms.append(ModulatedSpline(coarse, Centred("temp_air", 10.0, 10.0)))
    # The main spline starts from a generic curve; modulations start from no effect.
    prior_mean = np.zeros(sum(term.n_features for term in terms))
    prior_mean[: main.n_features] = generic_power_curve(
        np.clip(main.centres(), 0.0, None), rated_power
    )
    return BayesianBasisRegression(
        target="power",
        terms=tuple(terms),
        noise_source=speed,
        noise_edges=np.arange(0.0, cut_out + 0.25, 0.5),
        lower=0.0,
        upper=rated_power,
        units="kW",
        smoothing=1e-3,
        ridge=1e-6,
        forgetting=forgetting,
        prior_mean=prior_mean,
    )


class MethodOfBins:
    """IEC 61400-12-1:2017 method-of-bins power curve, as an emulator (the baseline).

    Readings are binned by density-normalised wind speed in 0.5 m/s bins centred on
    multiples of 0.5 m/s (clause 9.1.6); the curve is the per-bin mean power against
    the per-bin mean speed, linearly interpolated; its predictive spread is the per-bin
    standard deviation of power (clause 9.1.6's category A uncertainty basis), also
    interpolated. Bins with fewer than ``min_count`` readings are left out (the standard
    asks for at least three 10-minute values per bin). The spread is floored at
    ``min_std_fraction`` of rated power, the order of a class 0.5 power transducer's
    category B uncertainty in IEC 61400-12-1:2017; without a floor, bins where every reading
    was zero (below cut-in) would claim certainty and any later reading there would
    score minus infinity.

    Examples
    --------
    >>> model = MethodOfBins(rated_power=2050.0, site_pressure=101325.0)
    >>> v = np.linspace(3, 15, 500)
    >>> _ = model.update({"wind_speed": v, "power": np.clip(100 * (v - 3) ** 2, 0, 2050)})
    >>> float(model.predict({"wind_speed": [7.0]}).mean[0]) > 1000
    True
    """

    def __init__(
        self,
        *,
        rated_power: float,
        site_pressure: float = 101325.0,
        fallback_density: float = REFERENCE_DENSITY,
        bin_width: float = 0.5,
        max_speed: float = 30.0,
        min_count: int = 3,
        min_std_fraction: float = 0.005,
    ) -> None:
        self.rated_power = rated_power
        self.min_std_fraction = min_std_fraction
        self.site_pressure = site_pressure
        self.fallback_density = fallback_density
        self.bin_width = bin_width
        self.max_speed = max_speed
        self.min_count = min_count
        n_bins = round(max_speed / bin_width) + 1
        self.count_: FloatArray = np.zeros(n_bins)
        self.sum_speed_: FloatArray = np.zeros(n_bins)
        self.sum_power_: FloatArray = np.zeros(n_bins)
        self.sum_power_sq_: FloatArray = np.zeros(n_bins)

    target = "power"

    @property
    def _speed(self) -> NormalisedWindSpeed:
        return NormalisedWindSpeed(self.site_pressure, self.fallback_density)

    @property
    def inputs(self) -> tuple[str, ...]:
        """Names of the columns a prediction may read."""
        return self._speed.sources

    @property
    def n_observations_(self) -> float:
        return float(self.count_.sum())

    def get_params(self) -> dict[str, Any]:
        return {
            "rated_power": self.rated_power,
            "site_pressure": self.site_pressure,
            "fallback_density": self.fallback_density,
            "bin_width": self.bin_width,
            "max_speed": self.max_speed,
            "min_count": self.min_count,
            "min_std_fraction": self.min_std_fraction,
        }

    def _bin(self, speed: FloatArray) -> NDArray[np.intp]:
        index = np.floor(speed / self.bin_width + 0.5).astype(np.intp)
        return np.clip(index, 0, self.count_.size - 1)

    def update(self, observations: Columns) -> Self:
        speed = self._speed(observations)
        power = read_input(observations, "power")
        if speed is None or power is None:
            raise KeyError(
                f"missing input: expected columns 'wind_speed' and 'power', "
                f"got {sorted(observations)}"
            )
        ok = np.isfinite(speed) & np.isfinite(power)
        if not ok.all():
            row = int(np.flatnonzero(~ok)[0])
            raise ValueError(f"row {row}: expected finite wind_speed and power")
        index = self._bin(speed)
        size = self.count_.size
        self.count_ += np.bincount(index, minlength=size)
        self.sum_speed_ += np.bincount(index, speed, minlength=size)
        self.sum_power_ += np.bincount(index, power, minlength=size)
        self.sum_power_sq_ += np.bincount(index, power * power, minlength=size)
        return self

    def curve(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Bin mean speed [m/s], mean power [kW] and power std [kW] of usable bins."""
        usable = self.count_ >= self.min_count
        if usable.sum() < 2:
            raise ValueError(
                f"MethodOfBins: expected at least two bins with >= {self.min_count} "
                f"readings, got {int(usable.sum())}"
            )
        n = self.count_[usable]
        mean_power = self.sum_power_[usable] / n
        var = np.maximum(self.sum_power_sq_[usable] / n - mean_power**2, 0.0) * n / (n - 1)
        return self.sum_speed_[usable] / n, mean_power, np.sqrt(var)

    def predict(self, inputs: Columns) -> CensoredNormal:
        speed = self._speed(inputs)
        if speed is None:
            raise KeyError(f"missing input 'wind_speed': got columns {sorted(inputs)}")
        bin_speed, bin_power, bin_std = self.curve()
        loc = np.interp(speed, bin_speed, bin_power)
        std = np.interp(speed, bin_speed, bin_std)
        return CensoredNormal(
            loc,
            np.maximum(std, self.min_std_fraction * self.rated_power) ** 2,
            lower=0.0,
            upper=self.rated_power,
            units="kW",
        )

    def state(self) -> State:
        return {
            "count_": self.count_.copy(),
            "sum_speed_": self.sum_speed_.copy(),
            "sum_power_": self.sum_power_.copy(),
            "sum_power_sq_": self.sum_power_sq_.copy(),
        }

    @classmethod
    def from_state(cls, params: Mapping[str, Any], state: State) -> Self:
        model = cls(**params)
        for name in ("count_", "sum_speed_", "sum_power_", "sum_power_sq_"):
            setattr(model, name, np.array(state[name], dtype=np.float64))
        return model
