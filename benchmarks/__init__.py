"""twinweave's benchmark suite: the performance targets of the project, measured.

Run every benchmark with ``make bench`` (``python -m benchmarks``); it prints a table of
measured values, targets, competitors' values and ratios, and writes
``benchmarks/results.json`` with the machine it ran on.

Modules, one per topic:

- :mod:`benchmarks.assimilation`: batch assimilation, single-reading updates, posterior
  fit, prediction with quantiles, on the La Haute Borne SCADA data.
- :mod:`benchmarks.river_comparison`: against river's ``BayesianLinearRegression`` fed
  the same basis features one reading at a time (throughput, posterior mean).
- :mod:`benchmarks.openoa_comparison`: against OpenOA's power-curve fits (IEC,
  logistic-5, GAM): RMSE on 2015 and fit time.
- :mod:`benchmarks.pipeline`: ingest, clean, store and fit of the two years in a fresh
  process (wall time, peak memory), beside the plain pandas + OpenOA way.

Timings are never asserted in tests; ``tests/benchmarks`` runs each benchmark on tiny
inputs for correctness only.
"""
