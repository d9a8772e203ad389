"""Knowledge transfer across twins: hierarchical fleet models from sufficient statistics.

A twin shares only summaries of its data. The hierarchical (partial-pooling) fleet model
of Bull et al. (2023), *Computer-Aided Civil and Infrastructure Engineering* 38(7),
821-848, and Brealy et al. (2025), arXiv:2502.14527, is fitted by rounds of a local step
on every twin (:func:`local_step`) and an aggregation of the summed summaries
(:func:`aggregate`), so the same fit runs centrally (:func:`fit_central`), federated or
by gossip. ``docs/FLEET_MODEL.md`` gives the equations and the messages.
"""

from typing import TYPE_CHECKING

from twinweave.core._lazy import lazy_exports

# Imported when first used (twinweave/core/_lazy.py): a process takes only what it
# needs. The table lists the same names as the imports (tests/test_lazy_exports.py).
if TYPE_CHECKING:
    from twinweave.core._emulator import ConvergenceWarning
    from twinweave.transfer._experiment import (
        HISTORIES,
        PeriodLabels,
        TransferRow,
        calendar_months,
        calendar_weeks,
        joint_log_likelihood,
        markdown_table,
        new_turbine_experiment,
        transfer_scores,
    )
    from twinweave.transfer._federated import (
        FederatedResult,
        FitIns,
        FitRes,
        FitStrategy,
        FleetPooling,
        RoundReport,
        fit_federated,
        run_rounds,
    )
    from twinweave.transfer._fit import (
        FleetPosterior,
        complete_pooling,
        fit_central,
        fleet_emulator,
        no_pooling,
        population_twins,
    )
    from twinweave.transfer._flower import (
        FlowerRun,
        FlowerRunError,
        FlowerSettings,
        LoggedMessage,
        LoopbackFederation,
        load_statistics,
        read_message_log,
        save_statistics,
    )
    from twinweave.transfer._gossip import (
        GossipMessages,
        GossipResult,
        PeerGraph,
        PushSum,
        gossip_mean,
        predicted_rounds,
        spectral_gap,
    )
    from twinweave.transfer._gossip_fit import (
        GossipFit,
        fit_gossip,
        summary_from_payload,
        summary_payload,
    )
    from twinweave.transfer._hierarchy import (
        aggregate,
        initial_population,
        kinds_of,
        local_step,
        local_steps,
        population_change,
        twin_posterior,
        twin_posteriors,
    )
    from twinweave.transfer._records import (
        DEFAULT_KIND,
        MIN_TWINS_WITH_READINGS,
        Design,
        FleetPrior,
        LocalSummary,
        Population,
        TwinPosterior,
        TwinStatistics,
        sum_summaries,
    )
else:
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "twinweave.transfer._experiment": (
                "HISTORIES",
                "PeriodLabels",
                "TransferRow",
                "calendar_months",
                "calendar_weeks",
                "joint_log_likelihood",
                "markdown_table",
                "new_turbine_experiment",
                "transfer_scores",
            ),
            "twinweave.transfer._federated": (
                "FederatedResult",
                "FitIns",
                "FitRes",
                "FitStrategy",
                "FleetPooling",
                "RoundReport",
                "fit_federated",
                "run_rounds",
            ),
            "twinweave.transfer._fit": (
                "FleetPosterior",
                "complete_pooling",
                "fit_central",
                "fleet_emulator",
                "no_pooling",
                "population_twins",
            ),
            "twinweave.transfer._flower": (
                "FlowerRun",
                "FlowerRunError",
                "FlowerSettings",
                "LoggedMessage",
                "LoopbackFederation",
                "load_statistics",
                "read_message_log",
                "save_statistics",
            ),
            "twinweave.transfer._gossip": (
                "GossipMessages",
                "GossipResult",
                "PeerGraph",
                "PushSum",
                "gossip_mean",
                "predicted_rounds",
                "spectral_gap",
            ),
            "twinweave.transfer._gossip_fit": (
                "GossipFit",
                "fit_gossip",
                "summary_from_payload",
                "summary_payload",
            ),
            "twinweave.core._emulator": ("ConvergenceWarning",),
            "twinweave.transfer._hierarchy": (
                "aggregate",
                "initial_population",
                "kinds_of",
                "local_step",
                "local_steps",
                "population_change",
                "twin_posterior",
                "twin_posteriors",
            ),
            "twinweave.transfer._records": (
                "DEFAULT_KIND",
                "MIN_TWINS_WITH_READINGS",
                "Design",
                "FleetPrior",
                "LocalSummary",
                "Population",
                "TwinPosterior",
                "TwinStatistics",
                "sum_summaries",
            ),
        },
        subpackages=("flower_app",),
    )

__all__ = [
    "DEFAULT_KIND",
    "HISTORIES",
    "MIN_TWINS_WITH_READINGS",
    "ConvergenceWarning",
    "Design",
    "FederatedResult",
    "FitIns",
    "FitRes",
    "FitStrategy",
    "FleetPooling",
    "FleetPosterior",
    "FleetPrior",
    "FlowerRun",
    "FlowerRunError",
    "FlowerSettings",
    "GossipFit",
    "GossipMessages",
    "GossipResult",
    "LocalSummary",
    "LoggedMessage",
    "LoopbackFederation",
    "PeerGraph",
    "PeriodLabels",
    "Population",
    "PushSum",
    "RoundReport",
    "TransferRow",
    "TwinPosterior",
    "TwinStatistics",
    "aggregate",
    "calendar_months",
    "calendar_weeks",
    "complete_pooling",
    "fit_central",
    "fit_federated",
    "fit_gossip",
    "fleet_emulator",
    "gossip_mean",
    "initial_population",
    "joint_log_likelihood",
    "kinds_of",
    "load_statistics",
    "local_step",
    "local_steps",
    "markdown_table",
    "new_turbine_experiment",
    "no_pooling",
    "population_change",
    "population_twins",
    "predicted_rounds",
    "read_message_log",
    "run_rounds",
    "save_statistics",
    "spectral_gap",
    "sum_summaries",
    "summary_from_payload",
    "summary_payload",
    "transfer_scores",
    "twin_posterior",
    "twin_posteriors",
]
