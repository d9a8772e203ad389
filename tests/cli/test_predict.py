"""twinweave predict: bounded quantiles, the inputs it reads, and bad files named before any
work."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_support import (
    COMMAND_TIMEOUT,
    DEBUG_HINT,
    RATED_POWER,
    assert_user_error,
    command_environment,
    entry_point,
    one_line,
    predict,
    twinweave,
)

from twinweave import cli
from twinweave.core import Twin
from twinweave.data import Store
from twinweave.domains.water import reservoir_schema
from twinweave.models import StateSpaceEmulator
from twinweave.provenance import sha256_file

pytestmark = pytest.mark.slow


def test_predict_writes_bounded_quantiles_and_a_provenance_chain(
    fitted_store: Path, tmp_path: Path
) -> None:
    inputs = tmp_path / "X.csv"
    pd.DataFrame({"wind_speed": [0.0, 3.5, 7.0, 11.0, 15.0, 24.0]}).to_csv(inputs, index=False)
    output = tmp_path / "Y.csv"
    result = twinweave(
        "predict",
        "--store",
        fitted_store,
        "--twin",
        "R80711",
        "--input",
        inputs,
        "--output",
        output,
    )
    predictions = pd.read_csv(output)
    assert {"wind_speed", "mean", "q05", "q50", "q95"} <= set(predictions.columns)
    q = predictions[["q05", "q50", "q95"]].to_numpy()
    assert np.all(np.diff(q, axis=1) >= 0)
    assert q.min() >= 0.0 and q.max() <= RATED_POWER
    # The power curve rises: a twin of a real turbine, not a constant.
    assert predictions["mean"].iloc[3] > predictions["mean"].iloc[2] > predictions["mean"].iloc[1]
    assert predictions["mean"].iloc[5] > 1500.0  # rated region, above the data seen
    # ... which the twin says: 24 m/s is beyond the strongest wind of its training year.
    assert re.search(
        r"warning: 1 of 6 inputs are at wind speeds the twin has no readings", result.stderr
    )

    # The id printed is the output file's: Y.csv leads back to its numbers.
    file_id = re.search(r"provenance (file:[0-9a-f]+) --store", result.stdout)
    assert file_id is not None, result.stdout
    prov_json = tmp_path / "prov.json"
    chain = twinweave(
        "provenance", file_id.group(1), "--store", fitted_store, "--json", prov_json
    ).stdout
    # From the raw file (with its hash) through ingest, clean, fit to the number, and
    # the number to the file written.
    for step in ("sha256=", "ingest:", "clean:", "fit:", "model_version:", "prediction:"):
        assert step in chain
    assert chain.index("ingest:") < chain.index("fit:") < chain.index("prediction:")
    (last,) = [line for line in chain.splitlines() if f"Z  {file_id.group(1)}" in line]
    assert chain.index("prediction:") < chain.index(last), chain
    assert f"path={output.resolve()}" in last and f"sha256={sha256_file(output)}" in last
    document = json.loads(prov_json.read_text())
    assert {"entity", "activity", "used", "wasGeneratedBy"} <= set(document)
    # The export is the chain printed, not the whole store's provenance (other twins'
    # fits, later what-ifs): as many entities and activities as records printed.
    n_printed = int(re.search(r"(\d+) records, raw files first", chain).group(1))  # type: ignore[union-attr]
    assert len(document["entity"]) + len(document["activity"]) == n_printed
    assert f"wrote the chain's {n_printed} records as PROV-JSON" in chain


def test_predict_writes_csv_to_stdout_with_output_dash(fitted_store: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "X.csv"
    # A text column too: what is said about it goes to stderr, not into the table.
    frame = pd.DataFrame({"asset": ["R80711"] * 3, "wind_speed": [4.0, 8.0, 12.0]})
    frame.to_csv(inputs, index=False)
    to_file = tmp_path / "Y.csv"
    predict(fitted_store, inputs, to_file)
    piped = twinweave(
        "predict", "--store", fitted_store, "--twin", "R80711", "--input", inputs, "--output", "-"
    )  # fmt: skip
    # stdout is the table alone, the same as the file; what is said goes to stderr.
    assert piped.stdout == to_file.read_text()
    assert "inputs read: ['wind_speed']" in piped.stderr
    assert "not used as model inputs (not numeric): ['asset']" in piped.stderr
    assert "looks like the readings' times" not in piped.stderr
    assert "wrote 3 predictions to stdout" in piped.stderr
    assert re.search(r"provenance prediction:[0-9a-f]+ --store", piped.stderr)


def test_a_time_column_of_another_name_is_pointed_out(fitted_store: Path, tmp_path: Path) -> None:
    # Read as text and left out, 'Timestamp' made every reading count for 10 minutes in
    # a what-if; the two messages said so without saying why.
    inputs = tmp_path / "X.csv"
    times = pd.date_range("2015-01-01", periods=3, freq="1h", tz="UTC")
    pd.DataFrame({"Timestamp": times, "wind_speed": [4.0, 8.0, 12.0]}).to_csv(inputs, index=False)
    epoch = tmp_path / "E.csv"
    seconds = times.astype("int64") // 10**9
    pd.DataFrame({"Date/Time": seconds, "wind_speed": [4.0, 8.0, 12.0]}).to_csv(epoch, index=False)
    said_of_epoch = twinweave(
        "predict", "--store", fitted_store, "--twin", "R80711", "--input", epoch,
        "--output", tmp_path / "F.csv",
    )  # fmt: skip
    assert "column 'Date/Time' looks like the readings' times" in (
        said_of_epoch.stdout + said_of_epoch.stderr
    )
    said = twinweave(
        "predict", "--store", fitted_store, "--twin", "R80711", "--input", inputs,
        "--output", tmp_path / "Y.csv",
    )  # fmt: skip
    assert (
        "column 'Timestamp' looks like the readings' times: name it 'time'"
        in said.stdout + said.stderr
    )


def test_predict_says_which_columns_it_reads_and_ignores_the_others(
    fitted_store: Path, tmp_path: Path
) -> None:
    # A raw export: temperature under another name, a pitch far outside the schema's
    # bounds. Neither is read, the prediction is made from wind speed, and the user is
    # told so rather than refused.
    inputs = tmp_path / "export.csv"
    pd.DataFrame(
        {"wind_speed": [6.0, 9.0], "temperature": [-5.0, 25.0], "pitch": [0.0, 200.0]}
    ).to_csv(inputs, index=False)
    plain = tmp_path / "plain.csv"
    pd.DataFrame({"wind_speed": [6.0, 9.0]}).to_csv(plain, index=False)
    runs, means = [], []
    for source in (inputs, plain):
        output = source.with_suffix(".out.csv")
        runs.append(predict(fitted_store, source, output))
        means.append(pd.read_csv(output)["mean"].to_numpy())
    export_run, plain_run = runs
    assert "columns the twin does not read: ['temperature', 'pitch']" in export_run.stdout
    assert "temp_air" in export_run.stdout  # what it would have read
    assert "inputs read: ['wind_speed']" in plain_run.stdout
    assert "does not read" not in plain_run.stdout
    # The twin's optional inputs that are missing are named: the prediction differs.
    assert (
        "inputs the twin reads that are not given: ['temp_air', 'wind_direction']"
        in plain_run.stdout
    )
    np.testing.assert_array_equal(means[0], means[1])
    # A pressure without a temperature is read, and changes nothing: said so.
    pressure = tmp_path / "pressure.csv"
    pd.DataFrame({"wind_speed": [6.0, 9.0], "pressure": [95_000.0, 101_000.0]}).to_csv(
        pressure, index=False
    )
    run = predict(fitted_store, pressure, pressure.with_suffix(".out.csv"))
    assert "'pressure' is used only with 'temp_air'" in run.stderr, run.stderr
    assert "air density the site's mean" in plain_run.stdout
    # A density given is read: the site's mean is not what the prediction uses.
    density = tmp_path / "density.csv"
    pd.DataFrame({"wind_speed": [6.0, 9.0], "air_density": [1.30, 1.10]}).to_csv(
        density, index=False
    )
    run = predict(fitted_store, density, density.with_suffix(".out.csv"))
    assert "inputs read: ['wind_speed', 'air_density']" in run.stdout, run.stdout
    assert "not given: ['temp_air', 'wind_direction']" in run.stdout
    assert "the site's mean" not in run.stdout
    mean = pd.read_csv(pressure.with_suffix(".out.csv"))["mean"].to_numpy()
    np.testing.assert_array_equal(mean, means[1])


def test_predict_names_the_missing_column(fitted_store: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "bad.csv"
    pd.DataFrame({"speed": [5.0]}).to_csv(inputs, index=False)
    result = predict(fitted_store, inputs, tmp_path / "out.csv", ok=False)
    assert_user_error(result, "bad.csv", "'wind_speed'")
    assert "separated by" not in result.stderr
    # Separated by semicolons, as European spreadsheets write it: said.
    inputs.write_text("wind_speed;temp_air\n5;10\n")
    result = predict(fitted_store, inputs, tmp_path / "out.csv", ok=False)
    assert_user_error(
        result,
        "got ['wind_speed;temp_air']; the file seems separated by ';': the inputs are read "
        "as comma-separated",
    )


def test_predict_names_file_column_row_and_value_of_a_bad_input(
    fitted_store: Path, tmp_path: Path
) -> None:
    inputs = tmp_path / "typo.csv"
    # A blank line (which pandas skips) puts 'abc' on line 4 of the file.
    inputs.write_text("wind_speed\n5.0\n\nabc\n7.0\n")
    result = predict(fitted_store, inputs, tmp_path / "out.csv", ok=False)
    assert_user_error(result, "typo.csv", "'wind_speed'", "row 1 (line 4)", "got 'abc'")
    # An error raised only for bad input needs no hint that it may be a bug.
    assert DEBUG_HINT not in result.stderr
    # A number beyond the physical bounds: the line too (walk-through 2026-11-30).
    inputs.write_text("wind_speed\n5.0\n\n-1\n7.0\n")
    result = predict(fitted_store, inputs, tmp_path / "out.csv", ok=False)
    assert_user_error(
        result,
        "typo.csv: column 'wind_speed', row 1 (line 4): expected a value within [0, 60] m/s, "
        "got '-1.0'",
    )


def test_an_unknown_twin_or_store_is_named_and_no_store_is_created(
    fitted_store: Path, tmp_path: Path
) -> None:
    inputs = tmp_path / "X.csv"
    inputs.write_text("wind_speed\n5.0\n")
    unknown_twin = twinweave(
        "predict", "--store", fitted_store, "--twin", "R99999", "--input", inputs,
        "--output", tmp_path / "out.csv", ok=False,
    )  # fmt: skip
    assert_user_error(unknown_twin, "no twin 'R99999'", "R80711")
    # The user's to fix, not a possible bug: no hint to look at a traceback.
    assert DEBUG_HINT not in unknown_twin.stderr
    missing = tmp_path / "nope.duckdb"
    for command in (
        ("predict", "--twin", "R80711", "--input", inputs, "--output", tmp_path / "o.csv"),
        ("whatif", "--twin", "R80711", "--stop"),
        ("monitor", "--since", "2015-01-01"),
        ("provenance",),
        ("quarantine",),
    ):
        assert_user_error(twinweave(*command, "--store", missing, ok=False), "no such store")
    assert not missing.exists()


def test_a_twin_of_another_domain_is_named_not_read_as_a_turbine(tmp_path: Path) -> None:
    # A reservoir's twin saved from Python: the commands read wind speeds and write kW,
    # and took its file for one missing wind_speed, or its store for one without twins.
    emulator = StateSpaceEmulator.reservoir(
        capacity=1e4, initial_storage=5e3, initial_var=1e6, process_var=100.0, noise_var=400.0
    )
    store = tmp_path / "water.duckdb"
    with Store(store) as db:
        db.save_twin(Twin("dam", reservoir_schema(1e4), emulator))
    inputs = tmp_path / "flows.csv"
    inputs.write_text("inflow,outflow\n100,90\n")
    said = "twin 'dam': a twin of 'storage' [m^3] (schema 'Reservoir'), not of a wind turbine's"
    result = twinweave(
        "predict", "--store", store, "--twin", "dam", "--input", inputs, "--output",
        tmp_path / "out.csv", ok=False,
    )  # fmt: skip
    assert_user_error(result, said, "docs/RESERVOIRS.md")
    whatif = twinweave("whatif", "--store", store, "--twin", "dam", "--stop", ok=False)
    assert_user_error(whatif, said)
    report = twinweave(
        "report", "--store", store, "--since", "2015-01-01", "--output", tmp_path / "r", ok=False
    )
    # The twin left out is warned of, then the store refused for want of turbines.
    assert report.returncode == 2 and "Traceback" not in report.stderr
    assert report.stderr.startswith(f"warning: {said}")
    assert "left out\nerror: " in report.stderr and "no turbine twins" in report.stderr


def test_help_keeps_the_units() -> None:
    assert "[kW]" in twinweave("predict", "--help").stdout
    assert "[m/s]" in twinweave("predict", "--help").stdout


def predict_into_pipe(
    store: Path, inputs: Path, pipe: Path
) -> tuple[subprocess.CompletedProcess[str], bytes]:
    """``predict`` into a new named pipe ``pipe``, read by a thread: the command's
    result, and what the reader took."""
    os.mkfifo(pipe)
    read: list[bytes] = []
    reader = threading.Thread(target=lambda: read.append(pipe.read_bytes()))
    reader.start()
    try:
        result = predict(store, inputs, pipe)
    finally:
        reader.join(timeout=60)
    assert read, f"nothing read from {pipe}"
    return result, read[0]


def test_predictions_go_to_dev_null_or_a_named_pipe_as_csv(
    fitted_store: Path, tmp_path: Path
) -> None:
    # /dev/null was refused for want of a suffix; a FIFO would have blocked on hashing
    # what its reader had taken.
    inputs = tmp_path / "X.csv"
    pd.DataFrame({"wind_speed": [4.0, 9.0, 14.0]}).to_csv(inputs, index=False)
    result = predict(fitted_store, inputs, Path(os.devnull))
    assert "wrote 3 predictions to /dev/null" in result.stdout
    # No file to hash: the prediction's own id says where the numbers came from.
    assert re.search(r"twinweave provenance prediction:[0-9a-f]+ ", result.stdout), result.stdout
    pipe = tmp_path / "predictions"
    result, read = predict_into_pipe(fitted_store, inputs, pipe)
    assert f"wrote 3 predictions to {pipe}" in result.stdout
    lines = read.decode().splitlines()
    assert lines[0] == "wind_speed,mean,q05,q50,q95" and len(lines) == 4
    # A pipe named for Parquet gets the whole file (its writer seeks; a pipe cannot).
    _, read = predict_into_pipe(fitted_store, inputs, tmp_path / "predictions.parquet")
    assert len(pd.read_parquet(io.BytesIO(read))) == 3
    # The command's own stdout by name is stdout: the table alone there.
    result = predict(fitted_store, inputs, Path("/dev/stdout"))
    assert result.stdout.splitlines()[0] == "wind_speed,mean,q05,q50,q95", result.stdout
    assert "wrote 3 predictions to stdout" in result.stderr
    # The file stdout is redirected to would get the table and the messages mixed.
    redirected = tmp_path / "Y.csv"
    with redirected.open("w") as stdout:
        mixed = subprocess.run(
            [entry_point(), "predict", "--store", str(fitted_store), "--twin", "R80711",
             "--input", str(inputs), "--output", str(redirected)],
            stdout=stdout, stderr=subprocess.PIPE, text=True, env=command_environment(),
            timeout=COMMAND_TIMEOUT,
        )  # fmt: skip
    assert mixed.returncode == 2, mixed.stderr
    assert "is also where the command's output is redirected" in one_line(mixed.stderr)
    # A full device is named with the option; a socket is no place for a table.
    full = predict(fitted_store, inputs, Path("/dev/full"), ok=False)
    assert_user_error(full, "--output /dev/full: No space left on device")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(tmp_path / "s.csv"))
        refused = predict(fitted_store, inputs, tmp_path / "s.csv", ok=False)
    assert_user_error(refused, "is neither a file nor a stream")


def test_a_closed_stdout_is_no_output_and_no_crash(fitted_store: Path, tmp_path: Path) -> None:
    # Run with stdout closed (`>&-`), every command died importing the CLI (its console
    # asked a missing stdout whether it was a terminal).
    inputs = tmp_path / "X.csv"
    pd.DataFrame({"wind_speed": [4.0, 9.0]}).to_csv(inputs, index=False)

    def without_stdout(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [entry_point(), *map(str, args), "--store", str(fitted_store)],
            stderr=subprocess.PIPE, text=True, env=command_environment(),
            timeout=COMMAND_TIMEOUT, preexec_fn=lambda: os.close(1),
        )  # fmt: skip

    output = tmp_path / "Y.csv"
    to_file = without_stdout("predict", "--twin", "R80711", "--input", inputs, "--output", output)
    assert to_file.returncode == 0, to_file.stderr
    assert len(pd.read_csv(output)) == 2
    # What was asked for on stdout would be written nowhere.
    for stdout in ("-", "/dev/stdout"):
        refused = without_stdout(
            "predict", "--twin", "R80711", "--input", inputs, "--output", stdout
        )
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.startswith(f"error: --output {stdout}: stdout is closed")
    refused = without_stdout("provenance", "R80711", "--json", "-")
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.startswith("error: --json -: stdout is closed"), refused.stderr
    # /dev/null by name is no stdout, though the command puts it on descriptor 1.
    discarded = without_stdout(
        "predict", "--twin", "R80711", "--input", inputs, "--output", os.devnull
    )
    assert discarded.returncode == 0, discarded.stderr
    # Left closed, descriptor 1 went to the next file opened (the store) and took what
    # a library wrote to stdout (DuckDB's progress bar made a store unreadable).
    probe = (
        "import atexit, os, sys\n"
        "atexit.register(lambda: print('fd 1:', os.readlink('/proc/self/fd/1'), file=sys.stderr))\n"
        "from twinweave.cli import main\n"
        f"sys.argv = ['twinweave', 'provenance', '--store', {str(fitted_store)!r}]\n"
        "main()\n"
    )
    ended = subprocess.run(
        [sys.executable, "-c", probe], stderr=subprocess.PIPE, text=True,
        env=command_environment(), timeout=COMMAND_TIMEOUT, preexec_fn=lambda: os.close(1),
    )  # fmt: skip
    assert ended.returncode == 0, ended.stderr
    assert ended.stderr.splitlines()[-1] == f"fd 1: {os.devnull}", ended.stderr


def test_wind_speeds_that_may_be_km_h_are_said_to_be(fitted_store: Path, tmp_path: Path) -> None:
    # They got only the warning that the twin has no readings near, or the bound's
    # refusal, neither naming the likely cause.
    speeds = np.random.default_rng(0).weibull(2.0, 300)  # [m/s], times a scale below
    inputs = tmp_path / "kmh.csv"
    pd.DataFrame({"wind_speed": np.minimum(speeds * 6.0 * 3.6, 59.0)}).to_csv(inputs, index=False)
    said = one_line(predict(fitted_store, inputs, tmp_path / "Y.csv").stderr)
    assert "no readings near" in said and "if the speeds are km/h, divide them by 3.6" in said
    # A few gusts beyond the bound.
    pd.DataFrame({"wind_speed": speeds * 7.5 * 3.6}).to_csv(inputs, index=False)
    refused = predict(fitted_store, inputs, tmp_path / "Y.csv", ok=False)
    assert_user_error(refused, "expected a value within [0, 60] m/s", "divide them by 3.6")
    # In m/s beyond the readings, a storm, or a typo: no such hint.
    for speeds_in_ms in (speeds * 6.0 + 5.0, 17.0 + speeds * 3.0):
        pd.DataFrame({"wind_speed": speeds_in_ms}).to_csv(inputs, index=False)
        result = predict(fitted_store, inputs, tmp_path / "Y.csv")
        assert "no readings near" in result.stderr and "km/h" not in result.stderr
    for typo in (-2.0, 600.0):
        pd.DataFrame({"wind_speed": [*(speeds * 6.0)[:49], typo]}).to_csv(inputs, index=False)
        result = predict(fitted_store, inputs, tmp_path / "Y.csv", ok=False)
        assert_user_error(result, "expected a value within [0, 60] m/s")
        assert "km/h" not in result.stderr


def test_predict_refuses_bad_files_before_any_work(fitted_store: Path, tmp_path: Path) -> None:
    before = len(twinweave("provenance", "--store", fitted_store, "--limit", "1000").stdout)
    good = tmp_path / "good.csv"
    good.write_text("wind_speed\n8\n")
    (tmp_path / "adir").mkdir()
    files = {
        "empty.csv": ("", "empty"),
        "header.csv": ("wind_speed\n", "no rows"),
        "twice.csv": ("wind_speed,wind_speed\n5,6\n", "'wind_speed' appears more than once"),
        # Every row a field more than the header: not read with the first as an index.
        "more.csv": (
            "wind_speed,temp_air\n1,5,15\n2,6,16\n",
            "more.csv: rows have more fields than the header",
        ),
        # A last line cut short: its missing temperature is not a blank cell.
        "cut.csv": (
            "wind_speed,temp_air\n5,15\n6",
            "cut.csv: row has fewer fields than the header (a line cut short?) (no column, "
            "row 1 (line 3), value '1 field'); expected 2 fields",
        ),
        "data.json": ('[{"wind_speed": 5}]', "expected a CSV"),
        "negative.csv": (
            "wind_speed\n-3\n",
            "negative.csv: column 'wind_speed', row 0 (line 2): expected a value within [0, 60]",
        ),
    }
    for name, (text, expected) in files.items():
        (tmp_path / name).write_text(text)
        result = predict(fitted_store, tmp_path / name, tmp_path / "out.csv", ok=False)
        assert_user_error(result, expected)
    for output, expected in (
        (tmp_path / "adir", "is a directory"),
        (tmp_path / "missing" / "out.csv", "no such directory"),
        (tmp_path / "out.xlsx", "expected a CSV"),
        (good, "the --input file; expected another file name"),
    ):
        result = predict(fitted_store, good, output, ok=False)
        assert_user_error(result, expected)
    assert good.read_text() == "wind_speed\n8\n"  # the input was overwritten before
    # Refused before predicting: no prediction was recorded for an output never written.
    after = len(twinweave("provenance", "--store", fitted_store, "--limit", "1000").stdout)
    assert after == before
    parquet = tmp_path / "out.parquet"
    predict(fitted_store, good, parquet)
    assert list(pd.read_parquet(parquet).columns) == ["wind_speed", "mean", "q05", "q50", "q95"]


def test_predict_warns_where_an_input_it_reads_is_missing(
    fitted_store: Path, tmp_path: Path
) -> None:
    inputs = tmp_path / "gaps.csv"
    inputs.write_text("wind_speed,temp_air\n5,15\n5,\n")
    result = predict(fitted_store, inputs, tmp_path / "out.csv")
    assert "column 'temp_air': 1 of 2 rows are missing" in result.stderr


def test_an_error_from_below_the_cli_says_how_to_see_its_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A ValueError the CLI did not raise for the user's input may be a bug: one line,
    # exit code 2, and the way to its traceback.

    def broken(**_: object) -> None:
        raise ValueError("shapes (3,) and (4,) not aligned")

    monkeypatch.setattr(cli, "app", broken)
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("error: shapes (3,) and (4,) not aligned"), stderr
    assert DEBUG_HINT in stderr
    monkeypatch.setenv("TWINWEAVE_DEBUG", "1")
    with pytest.raises(ValueError, match="not aligned"):
        cli.main()


def test_inputs_the_twin_reads_are_numbers_and_times_are_times(
    fitted_store: Path, tmp_path: Path
) -> None:
    cases = {
        "steps.csv": (
            "time,wind_speed\n0,8\n1.5,9\n",
            "column 'time': expected times such as 2015-06-01T00:10:00Z, got numbers ('0.0', ...)",
        ),
        "no_times.csv": (
            "time,wind_speed\n,8\n,9\n",
            "column 'time', row 0 (line 2): expected an ISO 8601 time such as "
            "2015-06-01T00:10:00Z or 2015-06-01 00:10 (UTC), got a missing value (2 of 2 rows",
        ),
        "blank_time.csv": (
            "time,wind_speed\n2015-06-01T00:00Z,8\n,9\n",
            "column 'time', row 1 (line 3): expected an ISO 8601 time",
        ),
        "text_temp.csv": (
            "wind_speed,temp_air\n8,abc\n9,12\n",
            "column 'temp_air', row 0 (line 2): expected a number [degC] or a blank cell",
        ),
        # 22:10 UTC then 00:20 read as UTC, where ten minutes later was meant.
        "mixed_offsets.csv": (
            "time,wind_speed\n2015-06-01T00:10:00+02:00,8\n2015-06-01T00:20:00,9\n"
            "2015-06-01T00:30:00+02:00,9\n",
            "column 'time', row 1 (line 3): expected a UTC offset in every time or in none "
            "(times without one are UTC), got '2015-06-01T00:20:00' (1 of 3 rows are not)",
        ),
        # 1 June to some, 6 January to others: refused, not guessed.
        "day_first.csv": (
            "time,wind_speed\n2015-06-01T00:00Z,8\n01/06/2015 00:10,9\n",
            "column 'time', row 1 (line 3): expected an ISO 8601 time such as 2015-06-01T00:10:00Z",
        ),
    }
    for name, (text, expected) in cases.items():
        (tmp_path / name).write_text(text)
        for command in (
            ("predict", "--output", tmp_path / "out.csv"),
            ("whatif", "--stop", "--samples", "50"),
        ):
            result = twinweave(
                command[0], "--store", fitted_store, "--twin", "R80711",
                "--input", tmp_path / name, *command[1:], ok=False,
            )  # fmt: skip
            assert_user_error(result, expected)
    repeated = tmp_path / "repeated.csv"
    repeated.write_text(
        "time,wind_speed\n2015-06-01T00:00Z,8\n2015-06-01T00:00Z,8\n2015-06-01T00:10Z,9\n"
    )
    # Counted twice, a day given twice made more energy than a turbine can in a day
    # (review 2026-12-01); a prediction per row is fine.
    refused = twinweave(
        "whatif", "--store", fitted_store, "--twin", "R80711", "--stop", "--input", repeated,
        "--samples", "50", ok=False,
    )  # fmt: skip
    assert_user_error(
        refused,
        f"{repeated}: column 'time', row 1 (line 3): expected a time given once: energy and "
        "hours sum the readings over time",
        "got '2015-06-01T00:00Z' (1 of 3 rows are not)",
    )
    twinweave(
        "predict", "--store", fitted_store, "--twin", "R80711", "--input", repeated,
        "--output", tmp_path / "repeated_out.csv",
    )  # fmt: skip


def test_an_input_that_is_a_pipe_is_refused(fitted_store: Path, tmp_path: Path) -> None:
    # Read, then hashed by a second read, a pipe's record was of other bytes than those
    # predicted on; given once, the command waited forever (review 2026-12-01).
    pipe = tmp_path / "in.csv"
    os.mkfifo(pipe)
    for command in (("predict", "--output", tmp_path / "out.csv"), ("whatif", "--stop")):
        result = twinweave(
            command[0], "--store", fitted_store, "--twin", "R80711", "--input", pipe,
            *command[1:], ok=False,
        )  # fmt: skip
        assert_user_error(result, f"{pipe}: not a regular file (a pipe or a device)")


def test_text_from_the_user_is_printed_as_given(two_turbine_store: Path, tmp_path: Path) -> None:
    # Rich read ':1234:' and ':ok:' as emoji codes and '[b]' as markup.
    for entity in ("nonsense:1234", "prediction:ok"):
        result = twinweave("provenance", entity, "--store", two_turbine_store, ok=False)
        assert_user_error(result, f"error: '{entity}': no such provenance id")
    inputs = tmp_path / "x[b].csv"
    pd.DataFrame({"wind_speed": [5.0, 8.0, 11.0]}).to_csv(inputs, index=False)
    output = tmp_path / "o[b]:ok:.csv"
    result = predict(two_turbine_store, inputs, output)
    assert output.exists()
    assert f"wrote 3 predictions to {output}\n" in result.stdout, result.stdout


def test_python_dash_m_twinweave_is_the_command() -> None:
    # Where the venv's scripts are not on PATH, the module runs the same command.
    result = subprocess.run(
        [sys.executable, "-m", "twinweave", "version"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert '"twinweave"' in result.stdout
