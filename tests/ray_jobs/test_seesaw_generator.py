"""The controlled double-seesaw generator: one switchable term per mechanism, and its oracle ablation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow.dataset as pads
import pytest
from sklearn.metrics import roc_auc_score

from modules.spec import DatasetSpec
from ray_jobs.data import synthetic as gen
from ray_jobs.evaluation.oracle import oracle_ablation
from ray_jobs.reports.comparison import ablation_table

# small enough for seconds, dense enough that every term moves the oracle's AUC
SMALL = dataclasses.replace(gen.PRESETS["seesaw-small"], rows=30_000)
SWITCHES = {"user_groups": "user_group_scale", "domain_dims": "domain_dim_scale", "conflict": "conflict_fraction",
            "capacity": "capacity_scale"}


@pytest.fixture(scope="module")
def full() -> gen.Simulation:
    return gen.simulate(SMALL)


@pytest.mark.parametrize("term", sorted(SWITCHES))
def test_each_switch_changes_only_its_own_component(full, term):
    off = gen.simulate(dataclasses.replace(SMALL, **{SWITCHES[term]: 0.0}))
    assert term in full.components and term not in off.components
    for name, value in off.components.items():
        np.testing.assert_array_equal(value, full.components[name], err_msg=name)
    for name, value in off.columns.items():  # the impressions themselves do not move
        np.testing.assert_array_equal(value, full.columns[name], err_msg=name)


def test_every_term_switched_off_is_the_plain_generator():
    plain = {f: 0.0 for f in SWITCHES.values()}
    a = gen.simulate(dataclasses.replace(SMALL, **plain))
    b = gen.simulate(dataclasses.replace(SMALL, **plain, capacity_terms=()))
    assert set(a.components) == {"shared", "domain", "task", "dense", "context"}
    for name in a.components:
        np.testing.assert_array_equal(a.components[name], b.components[name])


def test_probabilities_stay_calibrated_and_deterministic(full):
    probs = full.probabilities()
    domain = full.columns["domain"]
    for d in range(len(SMALL.domains)):
        np.testing.assert_allclose(probs[domain == d].mean(axis=0), SMALL.positive_rates, rtol=1e-6)
    again = gen.simulate(SMALL)
    np.testing.assert_array_equal(again.probabilities(), probs)
    other = gen.simulate(dataclasses.replace(SMALL, seed=1))
    assert not np.allclose(other.components["capacity"], full.components["capacity"])


def test_capacity_terms_grow_with_the_task_and_conflict_sits_on_the_second_task(full):
    cap, conflict = full.components["capacity"], full.components["conflict"]
    assert np.all(cap[:, 0] == 0) and all(np.abs(cap[:, t]).max() > 0 for t in (1, 2, 3))
    flipped = SMALL.tasks.index(SMALL.conflict_tasks[1])
    assert np.count_nonzero(np.delete(conflict, flipped, axis=1)) == 0
    item = full.columns["item_id"]
    in_conflict = conflict[:, flipped] != 0
    # learnable from the item id: an item conflicts on every impression or on none
    per_item = np.bincount(item, in_conflict, minlength=SMALL.num_items) / np.maximum(np.bincount(item, minlength=SMALL.num_items), 1)
    assert np.isin(per_item[np.bincount(item, minlength=SMALL.num_items) > 0], (0.0, 1.0)).all()


def test_oracle_ablation_matches_sklearn_on_the_stored_columns(tmp_path):
    root = gen.generate(SMALL, tmp_path / "seesaw")
    spec = DatasetSpec.load(root)
    table = oracle_ablation(root, spec, num_resamples=20)
    assert set(table["term"]) == set(SWITCHES)
    test = pads.dataset(str(root / "test"), format="parquet").to_table().to_pandas()
    for row in table[table["domain"] == "all"].itertuples():
        logit = test[f"logit_{row.task}"].to_numpy(np.float64)
        np.testing.assert_allclose(1 / (1 + np.exp(-logit)), test[f"prob_{row.task}"], rtol=1e-5, atol=1e-6)
        without = logit - test[f"term_{row.term}_{row.task}"].to_numpy(np.float64)
        y = test[row.task].to_numpy()
        assert row.oracle_auc == pytest.approx(roc_auc_score(y, logit), abs=1e-9)
        assert row.without_auc == pytest.approx(roc_auc_score(y, without), abs=1e-9)
        assert row.worth_low <= row.worth <= row.worth_high
    like = table[(table["term"] == "conflict") & (table["task"] == "like") & (table["domain"] == "all")].iloc[0]
    assert like.worth_low > 0  # flipping half the items' preferences is worth a lot on the flipped task
    assert table[(table["term"] == "conflict") & (table["task"] == "click")].empty  # not applied there
    text = ablation_table(table)
    assert len(text.splitlines()) == len(table) + 2 and "| conflict | all | like |" in text


def test_plain_presets_store_no_terms(tmp_path):
    root = gen.generate(gen.PRESETS["tiny"], tmp_path / "tiny")
    assert oracle_ablation(root, DatasetSpec.load(root)) is None
