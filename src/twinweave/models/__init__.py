"""Emulators: Bayesian basis-function regression and linear-Gaussian state space."""

from twinweave.models._basis import (
    BasisTerm,
    Centred,
    DerivedInput,
    Harmonics,
    ModulatedSpline,
    SplineTerm,
)
from twinweave.models._bayes_basis import BayesianBasisRegression, posterior_from_statistics
from twinweave.models._state_space import (
    EMResult,
    FilterResult,
    SmootherResult,
    StateSpaceEmulator,
    StateSpaceModel,
    em_noise,
    kalman_filter,
    rts_smoother,
)

__all__ = [
    "BasisTerm",
    "BayesianBasisRegression",
    "Centred",
    "DerivedInput",
    "EMResult",
    "FilterResult",
    "Harmonics",
    "ModulatedSpline",
    "SmootherResult",
    "SplineTerm",
    "StateSpaceEmulator",
    "StateSpaceModel",
    "em_noise",
    "kalman_filter",
    "posterior_from_statistics",
    "rts_smoother",
]
