"""Emulators: Bayesian basis-function regression and linear-Gaussian state space."""

from twinweave.models._basis import (
    BasisTerm,
    Centred,
    DerivedInput,
    Harmonics,
    ModulatedSpline,
    SplineTerm,
)
from twinweave.models._bayes_basis import BayesianBasisRegression

__all__ = [
    "BasisTerm",
    "BayesianBasisRegression",
    "Centred",
    "DerivedInput",
    "Harmonics",
    "ModulatedSpline",
    "SplineTerm",
]
