"""Every `python -m ray_jobs.<entry>` turns bad input into one `error:` line and exit code 2.

Each case is input a user gets wrong (a missing file, a typo, a value out of range), run in this
process: the error must come before any Ray or training work starts, and without a traceback.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS = sorted(p.stem for p in (ROOT / "ray_jobs").glob("*.py") if p.stem != "__init__")

BAD_INPUT = {
    "train": (["--config", "{tmp}/nope.yaml"], "nope.yaml: config file not found"),
    "evaluate": (["--checkpoint", "{tmp}"], "neither a run directory"),
    "tune": (["--space", "{tmp}/nope.py"], "nope.py: search space file not found"),
    "compare": (["--models", "mmoe", "--seeds", "one"], "--seeds 'one': expected comma-separated integers"),
    "generate": (["--out", "{tmp}/g", "--preset", "tiny", "--rows", "0"], "sizes and counts must be >= 1"),
    "drift": (["--out", "{tmp}/d", "--preset", "tiny", "--days", "0"], "sizes and counts must be >= 1"),
    "prepare": (["{tmp}/nope.yaml", "--out", "{tmp}/out"], "nope.yaml: recipe not found"),
    "benchmark": (["--archs", "pepnett"], "unknown model 'pepnett'"),
    "export": (["--checkpoint", "{tmp}", "--out", "{tmp}/x"], "neither a run directory"),
    "predict": (["--model", "{tmp}/nope", "--data", "{tmp}", "--out", "{tmp}/p"], "no Parquet files to score"),
}


def test_every_entry_point_has_a_bad_input_case():
    assert sorted(BAD_INPUT) == ENTRY_POINTS


@pytest.mark.parametrize("entry", sorted(BAD_INPUT))
def test_bad_input_exits_2_with_one_line(entry, tmp_path, capsys):
    argv, message = BAD_INPUT[entry]
    main = importlib.import_module(f"ray_jobs.{entry}").main
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
