"""twinweave whatif: quantities side by side with the live twin's, and what it refuses."""

from __future__ import annotations

import re
import resource
import shutil
import subprocess
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from cli_support import (
    assert_user_error,
    command_environment,
    entry_point,
    one_line,
    twinweave,
    whatif_energy,
)

from twinweave.core import Derate
from twinweave.data import Store

pytestmark = pytest.mark.slow


def test_whatif_reports_quantities_side_by_side_with_their_provenance(
    fitted_store: Path,
) -> None:
    result = twinweave(
        "whatif",
        "--store",
        fitted_store,
        "--twin",
        "R80721",
        "--derate",
        "1000",
        "--start",
        "2015-03-01",
        "--end",
        "2015-03-08",
        "--samples",
        "200",
    )
    for quantity in ("energy", "capacity_factor", "hours_at_rated"):
        assert quantity in result.stdout
    assert "no 'time' column" not in result.stdout  # stored readings carry their times
    result_id = re.search(r"provenance (whatif_result:[0-9a-f]+)", result.stdout)
    assert result_id is not None, result.stdout
    chain = twinweave("provenance", result_id.group(1), "--store", fitted_store).stdout
    # Raw file (with its hash), ingest, clean, the week selected, fit, the branch with its
    # intervention, both predictions and the what-if, in that order.
    steps = ("sha256=", "ingest:", "clean:", "select:", "fit:", "branch:", "whatif:")
    positions = [chain.index(step) for step in steps]
    assert positions == sorted(positions), chain
    assert chain.count("predict:") == 2
    assert "interventions=derate to 1000" in chain
    assert chain.rstrip().endswith(result_id.group(1))


def test_a_whatif_of_a_saved_branch_points_to_its_live_twin(
    fitted_store: Path, tmp_path: Path
) -> None:
    # It looked for readings of asset 'R80711-derated' and said so as if it were a bug;
    # with --input it put the branch in the live twin's column.
    store = tmp_path / "branches.duckdb"
    shutil.copy(fitted_store, store)
    with Store(store) as db:
        db.save_twin(db.load_twin("R80711").branch(Derate(1500.0), name="R80711-derated"))
    refused = twinweave(
        "whatif", "--store", store, "--twin", "R80711-derated", "--derate", "1800", ok=False
    )  # fmt: skip
    assert_user_error(
        refused,
        "--twin R80711-derated: a saved branch of R80711 (derate to 1500)",
        "a what-if starts from a live twin: --twin R80711",
    )
    assert "TWINWEAVE_DEBUG" not in refused.stderr
    # A store written before a branch could no longer be saved under its parent's name:
    # the advice above pointed back to the same command (review 2026-12-01).
    with duckdb.connect(str(store)) as con:
        con.execute(
            "UPDATE model_versions SET twin_id = 'R80711', version = 2 "
            "WHERE twin_id = 'R80711-derated'"
        )
    refused = twinweave(
        "whatif", "--store", store, "--twin", "R80711", "--derate", "1800", ok=False
    )  # fmt: skip
    assert_user_error(
        refused,
        "--twin R80711: the store's latest version of R80711 is a branch of R80711 saved "
        "under its parent's own name (refused since); fit R80711 again",
    )


def test_nonsense_interventions_are_refused(fitted_store: Path) -> None:
    for option, value in (("--derate", "-100"), ("--scale", "-2")):
        result = twinweave(
            "whatif", "--store", fitted_store, "--twin", "R80711", option, value, ok=False
        )
        assert_user_error(result, option, value)
    # What Click refuses before the command runs is one error line too, not a box
    # (review 2026-12-01).
    for option, value, expected in (
        ("--derate", "abc", "Invalid value for '--derate': 'abc' is not a valid float."),
        ("--samples", "19", "Invalid value for '--samples': 19 is not in the range x>=20."),
        ("--no-such-option", "1", "No such option '--no-such-option'."),
    ):
        result = twinweave(
            "whatif", "--store", fitted_store, "--twin", "R80711", option, value, ok=False
        )
        assert_user_error(result, expected, "(`twinweave whatif --help` shows the usage)")
        assert "╭" not in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
    # A derate of -0 is one of 0 kW, and says so (it read "derate to -0 kW").
    result = twinweave(
        "whatif", "--store", fitted_store, "--twin", "R80711", "--derate=-0",
        "--start", "2015-06-01", "--end", "2015-06-02", "--samples", "50",
    )  # fmt: skip
    assert "derate to 0 kW" in result.stdout, result.stdout
    assert "-0 kW" not in result.stdout + result.stderr, result.stdout


def test_whatif_counts_each_reading_for_its_own_time_step(
    fitted_store: Path, tmp_path: Path
) -> None:
    # One day at a steady 10 m/s, given hourly and every ten minutes: the same energy.
    energies, titles = {}, {}
    for step, n in (("1h", 24), ("10min", 144)):
        inputs = tmp_path / f"day_{step}.csv"
        times = pd.date_range("2015-06-01", periods=n, freq=step, tz="UTC")
        pd.DataFrame({"time": times, "wind_speed": 10.0}).to_csv(inputs, index=False)
        result = twinweave(
            "whatif", "--store", fitted_store, "--twin", "R80711", "--scale", "0.97",
            "--input", inputs, "--samples", "200",
        )  # fmt: skip
        energies[step] = whatif_energy(result)
        titles[step] = result.stdout
        assert "hours_at_rated [h]" in result.stdout  # units are text, not markup
    assert "24 readings of 60 minutes" in titles["1h"]
    assert "144 readings of 10 minutes" in titles["10min"]
    assert energies["1h"] == pytest.approx(energies["10min"], rel=0.01), energies
    # Two readings ten minutes apart and one two days later: ten minutes each, and the
    # gap is said (the median step of two, a day, counted each reading for 24 hours).
    sparse = tmp_path / "sparse.csv"
    times = pd.to_datetime(["2015-06-01T00:00Z", "2015-06-01T00:10Z", "2015-06-03T00:00Z"])
    pd.DataFrame({"time": times, "wind_speed": 10.0}).to_csv(sparse, index=False)
    result = twinweave(
        "whatif", "--store", fitted_store, "--twin", "R80711", "--scale", "0.97",
        "--input", sparse, "--samples", "200",
    )  # fmt: skip
    assert "3 readings of 10 minutes" in result.stdout, result.stdout
    assert (
        "the readings cover 0.5 h of the 48 h from the first to the last (1%)" in result.stderr
    ), result.stderr
    assert "the inputs step by" not in result.stderr  # a gap is not a second cadence
    # Nor are many: a fifth of the 10-minute readings missing at random (review
    # 2026-11-30: counted by frequency, their 20-minute steps were taken for one).
    gappy = tmp_path / "gappy.csv"
    times = pd.date_range("2015-06-01", periods=600, freq="10min", tz="UTC")
    kept = np.random.default_rng(2).random(600) > 0.2
    pd.DataFrame({"time": times[kept], "wind_speed": 10.0}).to_csv(gappy, index=False)
    result = twinweave(
        "whatif", "--store", fitted_store, "--twin", "R80711", "--scale", "0.97",
        "--input", gappy, "--samples", "200",
    )  # fmt: skip
    assert "the inputs step by" not in result.stderr, result.stderr
    # Twelve hours every ten minutes, then twelve hourly readings: each counted for ten
    # minutes, which is said rather than taken for missing readings only.
    mixed = tmp_path / "mixed.csv"
    times = pd.date_range("2015-06-01", periods=72, freq="10min", tz="UTC").append(
        pd.date_range("2015-06-01T12:00", periods=12, freq="1h", tz="UTC")
    )
    pd.DataFrame({"time": times, "wind_speed": 10.0}).to_csv(mixed, index=False)
    result = twinweave(
        "whatif", "--store", fitted_store, "--twin", "R80711", "--scale", "0.97",
        "--input", mixed, "--samples", "200",
    )  # fmt: skip
    assert (
        "column 'time': the inputs step by 10 minutes 72 times and by 60 minutes 11 times; "
        "every reading is counted for 10 minutes" in result.stderr
    ), result.stderr


def test_whatif_warns_of_its_inputs_as_predict_does(fitted_store: Path, tmp_path: Path) -> None:
    # Wind beyond any the twin has seen (km/h in the m/s column), a blank temperature, one
    # colder than any it has seen and a power column it does not read: said as predict
    # says them (walk-through 2026-11-29).
    inputs = tmp_path / "storm.csv"
    times = pd.date_range("2015-06-01", periods=6, freq="10min", tz="UTC")
    frame = pd.DataFrame({"time": times, "wind_speed": 36.0, "temp_air": 12.0, "power": 0.0})
    frame.loc[2, "temp_air"] = np.nan
    frame.loc[3, "temp_air"] = -35.0  # colder than any reading it learned from
    frame.to_csv(inputs, index=False)
    for command in ("predict", "whatif"):
        options = ("--output", tmp_path / "y.csv") if command == "predict" else ("--stop",)
        result = twinweave(
            command, "--store", fitted_store, "--twin", "R80711", "--input", inputs, *options
        )
        assert "6 of 6 inputs are at wind speeds the twin has no readings near" in result.stderr
        assert "column 'temp_air': 1 of 6 rows are missing" in result.stderr, result.stderr
        assert re.search(
            r"input 'temp_air': 1 of 6 rows are outside -?[0-9.]+ to [0-9.]+ degC, the values "
            r"the twin has assimilated; there the effect of temp_air on the curve is "
            r"extrapolated",
            result.stderr,
        ), result.stderr
        assert "columns the twin does not read: ['power']" in result.stdout, result.stdout
        assert "the twin reads that are not given: ['wind_direction']" in result.stdout
    # The output repeats the times in the ISO 8601 form the commands read and print.
    written = (tmp_path / "y.csv").read_text().splitlines()
    assert written[1].startswith("2015-06-01T00:00:00+00:00,"), written[:2]


def test_whatif_says_when_it_guesses_a_readings_length(fitted_store: Path, tmp_path: Path) -> None:
    # Two readings a day apart were counted as a day each, one reading as 10 minutes,
    # silently ("1 readings of 10 minutes").
    base = ("whatif", "--store", fitted_store, "--twin", "R80711", "--derate", "500")
    two = tmp_path / "two.csv"
    two.write_text("time,wind_speed\n2015-06-01T00:00Z,9\n2015-06-02T00:00Z,9\n")
    result = twinweave(*base, "--input", two, "--samples", "50")
    assert (
        "column 'time': each reading is counted for 24 hours, the step between its 2 times, "
        "too few to be sure of it" in one_line(result.stderr)
    ), result.stderr
    one = tmp_path / "one.csv"
    one.write_text("time,wind_speed\n2015-06-01T00:00Z,9\n")
    result = twinweave(*base, "--input", one, "--samples", "50")
    assert "column 'time': one time only" in one_line(result.stderr), result.stderr
    assert "(1 reading of 10 minutes)" in one_line(result.stdout), result.stdout
    # Enough times: nothing said.
    times = pd.date_range("2015-06-01", periods=6, freq="10min", tz="UTC")
    six = tmp_path / "six.csv"
    pd.DataFrame({"time": times, "wind_speed": 9.0}).to_csv(six, index=False)
    assert "column 'time'" not in twinweave(*base, "--input", six, "--samples", "50").stderr


def test_whatif_says_when_its_sample_paths_do_not_fit_in_memory(
    fitted_store: Path, tmp_path: Path
) -> None:
    # 20,000 readings x 50,000 paths: 7.5 GiB an array, in a process allowed 4 GiB.
    inputs = tmp_path / "year.csv"
    times = pd.date_range("2015-01-01", periods=20_000, freq="10min", tz="UTC")
    pd.DataFrame({"time": times, "wind_speed": 8.0}).to_csv(inputs, index=False)
    executable = entry_point()

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))

    result = subprocess.run(
        [executable, "whatif", "--store", str(fitted_store), "--twin", "R80711", "--stop",
         "--input", str(inputs), "--samples", "50000"],
        capture_output=True, text=True, timeout=300, preexec_fn=limit_memory,
        env=command_environment({"OPENBLAS_NUM_THREADS": "1"}),
    )  # fmt: skip
    assert_user_error(
        result,
        "--samples 50000: not enough memory for 50000 sample paths of 20000 readings "
        "(7.5 GiB an array)",
    )


def test_whatif_says_when_the_period_runs_beyond_the_readings(fitted_store: Path) -> None:
    base = ("whatif", "--store", fitted_store, "--twin", "R80711", "--stop", "--samples", "50")
    beyond = twinweave(*base, "--start", "2015-12-30", "--end", "2016-03-01")
    said = " ".join(beyond.stderr.split())
    assert "the stored readings of R80711 in the period asked for run from 2015-12-30" in said
    assert "the quantities are totals over those readings only" in said
    within = twinweave(*base, "--start", "2015-06-01", "--end", "2015-06-02")
    assert "in the period asked for" not in within.stderr, within.stderr


def test_whatif_refuses_what_it_cannot_mean(fitted_store: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "x.csv"
    inputs.write_text("wind_speed\n8\n")
    base = ("whatif", "--store", fitted_store, "--twin", "R80711")
    for factor in ("inf", "nan", "2"):
        assert_user_error(twinweave(*base, "--scale", factor, ok=False), "--scale", "[0, 1.25]")
    both = twinweave(*base, "--stop", "--input", inputs, "--start", "2015-01-01", ok=False)
    assert_user_error(both, "--start/--end", "--input")
    backwards = twinweave(*base, "--stop", "--start", "2015-07-01", "--end", "2015-06-01", ok=False)
    assert_user_error(backwards, "--end 2015-06-01", "after --start")
    no_samples = twinweave(*base, "--stop", "--samples", "19", ok=False)
    assert no_samples.returncode == 2 and "--samples" in no_samples.stderr
    assert "19 is not in the range x>=20" in one_line(no_samples.stderr)
    assert "Traceback" not in no_samples.stderr
    # Was "error: expected non-negative integer" from numpy, naming no option.
    negative_seed = twinweave(*base, "--stop", "--seed", "-1", ok=False)
    assert negative_seed.returncode == 2 and "--seed" in negative_seed.stderr
    assert "-1 is not in the range x>=0" in one_line(negative_seed.stderr)
    # The detectors need 30 days: --calibration-days 29 failed (or only warned, in report)
    # after the monitor ran, under a help that said x>=1.
    for command in ("monitor", "report"):
        short = twinweave(command, "--store", fitted_store, "--calibration-days", "29", ok=False)
        assert short.returncode == 2 and "--calibration-days" in short.stderr
        assert "29 is not in the range x>=30" in one_line(short.stderr), short.stderr
    # A period without stored readings names the twin and where its readings are.
    later = twinweave(*base, "--stop", "--start", "2017-01-01", "--end", "2017-02-01", ok=False)
    assert_user_error(
        later,
        "twin 'R80711': no stored readings from 2017-01-01 until 2017-02-01; its readings "
        "run from 2014-01-",
        " to 2015-12-31 ",
    )


def test_whatif_says_the_unit_of_a_derate_and_that_one_above_rated_changes_nothing(
    fitted_store: Path,
) -> None:
    base = ("whatif", "--store", fitted_store, "--twin", "R80711", "--samples", "50")
    period = ("--start", "2015-06-01", "--end", "2015-06-02")
    capped = twinweave(*base, *period, "--derate", "1500")
    assert "what-if for R80711: derate to 1500 kW (" in capped.stdout, capped.stdout
    above = twinweave(*base, *period, "--derate", "3000")
    assert "derate to 3000 kW" in above.stdout
    assert "warning: --derate 3000 kW is at or above rated power (2050 kW)" in above.stderr
    assert "warning: --derate" not in capped.stderr
    # Its hours at rated are none: they count hours at the nameplate rating, not the cap.
    said = " ".join(capped.stdout.split())
    assert (
        "hours_at_rated counts hours at 98% or more of the rated power, 2009 of 2050 kW; the "
        "branch's power stays at or below 1500 kW, so it has none" in said
    ), said
    assert "hours_at_rated counts" not in above.stdout
    # A cap in MW where kW is meant: taken as given, and questioned.
    in_mw = twinweave(*base, *period, "--derate", "1.5")
    assert "warning: --derate 1.5 kW is under 1 % of rated power (2050 kW)" in in_mw.stderr


def test_a_loss_under_a_cap_still_reaches_the_cap(fitted_store: Path, tmp_path: Path) -> None:
    # --derate 1500 --scale 0.97 scaled the capped curve: at most 1455 kW in high wind,
    # where a turbine with a 3 % loss still reaches its 1500 kW setpoint.
    inputs = tmp_path / "gale.csv"
    times = pd.date_range("2015-06-01", periods=24, freq="1h", tz="UTC")
    pd.DataFrame({"time": times, "wind_speed": 16.0}).to_csv(inputs, index=False)
    result = twinweave(
        "whatif", "--store", fitted_store, "--twin", "R80711", "--derate", "1500",
        "--scale", "0.97", "--input", inputs, "--samples", "200",
    )  # fmt: skip
    said = " ".join(result.stdout.split())
    found = re.search(r"energy \[MWh\] │ [-0-9.e+]+ [^│]*│ ([-0-9.e+]+)", said)
    assert found is not None, said
    # Nearly every hour at the cap: 24 h x 1500 kW (24 x 1455 kW is 34.92 MWh).
    assert 35.5 <= float(found.group(1)) <= 36.0, said
    # The turbine changed first, then its setpoint.
    assert "what-if for R80711: scale target by 0.97; derate to 1500 kW" in said, said
