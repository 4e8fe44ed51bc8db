"""The seesaw benchmark's headline table (`ray_jobs.reports.mechanisms`) from comparison reports'
CSVs: the gains it shows are the reports' own, and its verdict follows the stated rule."""

from __future__ import annotations

import pandas as pd
import pytest

from ray_jobs.data.synthetic import MECHANISM_TERMS

from ray_jobs.reports.mechanisms import ALL_ON, BASELINES, MECHANISMS, main, mechanism_table, report_dir


def _report(root, variant, baseline, models: dict[str, tuple[float, float, float]]) -> None:
    """A report whose `model` gains (mean gauc, gain_low, gain_high) over `baseline` are given."""
    directory = report_dir(root, variant, baseline)
    directory.mkdir(parents=True)
    base = 0.70
    summary = [{"model": baseline, "mean_gauc": base, "mean_auc": base}]
    intervals = [{"model": baseline, "metric": "gauc", "low": 0.6, "high": 0.8, "gain_low": None, "gain_high": None}]
    for model, (gain, low, high) in models.items():
        summary.append({"model": model, "mean_gauc": base + gain, "mean_auc": base})
        intervals.append({"model": model, "metric": "gauc", "low": 0.6, "high": 0.8, "gain_low": low, "gain_high": high})
    pd.DataFrame(summary).to_csv(directory / "summary.csv", index=False)
    pd.DataFrame(intervals).to_csv(directory / "intervals.csv", index=False)


def test_gains_come_from_the_reports_and_the_verdict_follows_the_rule(tmp_path):
    on = {"pepnet": (0.02, 0.01, 0.03), "stem": (0.01, -0.001, 0.02), "smes": (0.005, 0.001, 0.01)}
    for baseline in BASELINES:
        _report(tmp_path, ALL_ON, baseline, on)
        _report(tmp_path, "user_groups_off", baseline, {"pepnet": (0.0, -0.01, 0.01)})
        _report(tmp_path, "domain_dims_off", baseline, {"pepnet": (-0.02, -0.03, -0.01) if baseline == "mmoe"
                                                        else (0.0, -0.01, 0.01)})
        _report(tmp_path, "conflict_off", baseline, {"stem": (0.0, -0.01, 0.01)})
        # capacity_off missing: that claim is not measured
    table = mechanism_table(tmp_path).set_index("term")
    assert [m.term for m in MECHANISMS] == list(table.index)
    assert table.loc["user_groups", "on: vs sharedbottom"] == "+0.0200 [+0.0100, +0.0300]"
    assert table.loc["user_groups", "claim holds"] == "yes"
    assert table.loc["user_groups", "on - off: vs sharedbottom"] == "+0.0200"  # 0.02 on, 0.0 off
    assert table.loc["capacity", "on - off: vs sharedbottom"] == "absent"
    assert table.loc["domain_dims", "claim holds"] == "no (off: below mmoe)"
    assert table.loc["conflict", "claim holds"] == "no (on: not above sharedbottom; on: not above mmoe)"
    assert table.loc["capacity", "off: vs mmoe"] == "absent"
    assert table.loc["capacity", "claim holds"] == "not measured"
    assert main([str(tmp_path)]) == 0  # the files the benchmark's docs quote: the table and its legend
    written = (tmp_path / "mechanisms_gauc.md").read_text()
    assert "| user_groups | pepnet | +0.0200 [+0.0100, +0.0300]" in written and "- conflict: " in written
    assert tuple(m.term for m in MECHANISMS) == MECHANISM_TERMS  # one row per generator term


def test_a_root_without_the_benchmark_reports_is_an_error_naming_it(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "typo")])
    assert exit_info.value.code == 2 and "typo: no all_on/ report" in capsys.readouterr().err
