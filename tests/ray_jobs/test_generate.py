"""The synthetic generator: rates, sizes, layout, determinism, and that its signal is real."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from modules.spec import PROBABILITY_PREFIX, DatasetSpec
from modules.strict import ConfigError
from ray_jobs.data import synthetic as gen
from ray_jobs.generate import main as generate_main

TINY = gen.PRESETS["tiny"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return gen.generate(TINY, tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="module")
def table(data_dir) -> pa.Table:
    return pa.concat_tables(pq.read_table(p) for s in gen.SPLITS for p in sorted((data_dir / s).glob("*.parquet")))


@pytest.fixture(scope="module")
def sim():
    return gen.simulate(TINY)


def test_layout_and_spec_match_columns(data_dir, table):
    spec = DatasetSpec.load(data_dir)
    assert spec == gen.dataset_spec(TINY)
    assert json.loads((data_dir / gen.GENERATOR_FILE).read_text())["rows"] == TINY.rows
    for split in gen.SPLITS:
        assert len(list((data_dir / split).glob("part-*.parquet"))) == TINY.files_per_split
    expected = set(spec.required_columns()) | {PROBABILITY_PREFIX + t for t in spec.tasks}
    assert set(table.column_names) == expected
    for f in spec.sparse_features:
        col = table[f.name].combine_chunks()
        if f.multi_hot:
            assert pa.types.is_list(col.type) and col.type.value_type == pa.int64()
            col = col.flatten()
        else:
            assert col.type == pa.int64()
        ids = col.to_numpy()
        assert ids.min() >= 0 and ids.max() < f.cardinality
    for name in spec.dense_features:
        assert table[name].type == pa.float32()
    assert spec.feature("domain").role == "domain" and spec.feature("domain").cardinality == len(TINY.domains)
    assert spec.id_column == gen.ID_COLUMN
    np.testing.assert_array_equal(np.sort(table[gen.ID_COLUMN].to_numpy()), np.arange(TINY.rows))


def test_split_sizes(data_dir):
    sizes = [sum(pq.ParquetFile(p).metadata.num_rows for p in (data_dir / s).glob("*.parquet")) for s in gen.SPLITS]
    assert sizes == [int(round(f * TINY.rows)) for f in TINY.split_fractions]


def test_positive_rates_and_domain_sizes_match_config(table):
    n = table.num_rows
    domain = table["domain"].to_numpy()
    share = np.bincount(domain, minlength=len(TINY.domains)) / n
    frac = np.asarray(TINY.domain_fractions)
    np.testing.assert_array_less(np.abs(share - frac), 5 * np.sqrt(frac * (1 - frac) / n))
    for task, rate in zip(TINY.tasks, TINY.positive_rates):
        labels = table[task].to_numpy()
        probs = table[PROBABILITY_PREFIX + task].to_numpy()
        assert abs(labels.mean() - rate) < 5 * np.sqrt(rate * (1 - rate) / n)
        for d in range(len(TINY.domains)):
            cell = domain == d
            assert probs[cell].mean() == pytest.approx(rate, rel=1e-3)  # calibrated per cell
            assert abs(labels[cell].mean() - rate) < 5 * np.sqrt(rate * (1 - rate) / cell.sum()) + 1e-3


def test_author_follows_item(table):
    items, authors = table["item_id"].to_numpy(), table["author_id"].to_numpy()
    order = np.argsort(items, kind="stable")
    same_item = items[order][1:] == items[order][:-1]
    assert (authors[order][1:][same_item] == authors[order][:-1][same_item]).all()


def test_ids_are_skewed(table):
    counts = np.bincount(table["item_id"].to_numpy(), minlength=TINY.num_items)
    top = np.sort(counts)[::-1]
    assert top[: TINY.num_items // 100].sum() > 0.2 * counts.sum()  # top 1% of items: > 20% of traffic


def test_history_lengths_and_empty_lists(table):
    lengths = pa.compute.list_value_length(table["hist_items"]).to_numpy()
    assert lengths.min() == 0 and lengths.max() == TINY.max_history
    assert 0.02 < (lengths == 0).mean() < 0.3


def test_deterministic_bytes(tmp_path, data_dir):
    again = gen.generate(TINY, tmp_path / "again")
    for split in gen.SPLITS:
        for path in sorted((data_dir / split).glob("*.parquet")):
            assert path.read_bytes() == (again / split / path.name).read_bytes()
    other = gen.to_table(gen.simulate(dataclasses.replace(TINY, rows=2000, seed=1)), dataclasses.replace(TINY, rows=2000, seed=1))
    mine = gen.to_table(gen.simulate(dataclasses.replace(TINY, rows=2000)), dataclasses.replace(TINY, rows=2000))
    assert not other.equals(mine)


def test_generate_skips_complete_and_redoes_changed(tmp_path):
    small = dataclasses.replace(TINY, rows=1000)
    out = gen.generate(small, tmp_path)
    part = out / "train" / "part-00000.parquet"
    stamp = part.stat().st_mtime_ns
    gen.generate(small, tmp_path)
    assert part.stat().st_mtime_ns == stamp  # skipped
    (out / gen.GENERATOR_FILE).unlink()  # incomplete: regenerated
    gen.generate(small, tmp_path)
    assert gen.is_complete(small, tmp_path)
    bigger = dataclasses.replace(small, rows=1200)
    assert not gen.is_complete(bigger, tmp_path)
    gen.generate(bigger, tmp_path)
    assert sum(pq.ParquetFile(p).metadata.num_rows for s in gen.SPLITS for p in (out / s).glob("*.parquet")) == 1200


def test_oracle_auc(table):
    auc = roc_auc_score(table["click"].to_numpy(), table[PROBABILITY_PREFIX + "click"].to_numpy())
    assert auc > 0.6


def test_domain_effect_matters(sim):
    """Dropping the per-domain interaction (biases recalibrated) must lose AUC in the small domains."""
    probs = sim.probabilities()
    labels = np.random.default_rng(0).random(probs.shape) < probs
    domain = sim.columns["domain"]
    logit = sum(v for k, v in sim.components.items() if k != "domain")
    bias = gen.calibrate_bias(logit, domain, len(TINY.domains), np.asarray(TINY.positive_rates))
    pooled = gen._sigmoid(logit + bias.T[domain])
    for d in (1, 2):
        cell = domain == d
        full = roc_auc_score(labels[cell, 0], probs[cell, 0])
        assert full - roc_auc_score(labels[cell, 0], pooled[cell, 0]) > 0.02


def test_conflict_flips_second_task_on_a_fixed_fraction_of_pairs():
    base = dataclasses.replace(TINY, rows=5000)
    conflicted = gen.simulate(dataclasses.replace(base, conflict_fraction=0.3))
    plain = gen.simulate(base)
    a, b = plain.components, conflicted.components
    flipped = np.isclose(b["shared"][:, 1], -a["shared"][:, 1]) & (np.abs(a["shared"][:, 1]) > 1e-9)
    assert flipped.mean() == pytest.approx(0.3, abs=0.05)
    np.testing.assert_array_equal(b["shared"][:, 0], a["shared"][:, 0])  # the first task is untouched
    # a pair is either always or never in conflict
    pair = plain.columns["user_id"] * TINY.num_items + plain.columns["item_id"]
    _, inverse = np.unique(pair, return_inverse=True)
    per_pair = np.bincount(inverse, weights=flipped) / np.bincount(inverse)
    assert np.isin(per_pair, (0.0, 1.0)).all()


def test_item_conflict_flips_every_pair_of_a_fraction_of_the_items():
    base = dataclasses.replace(TINY, rows=5000)
    plain = gen.simulate(base)
    conflicted = gen.simulate(dataclasses.replace(base, conflict_fraction=0.5, conflict_by="item"))
    parts = ("shared", "domain", "task", "conflict")  # the flip is the `conflict` term of its own
    a = sum(plain.components[n][:, 1] for n in parts if n in plain.components)
    b = sum(conflicted.components[n][:, 1] for n in parts if n in conflicted.components)
    flipped = np.isclose(b, -a) & (np.abs(a) > 1e-9)
    _, inverse = np.unique(plain.columns["item_id"], return_inverse=True)
    per_item = np.bincount(inverse, weights=flipped) / np.bincount(inverse)
    assert np.isin(per_item, (0.0, 1.0)).all(), "an item conflicts with every user or with none"
    assert per_item.mean() == pytest.approx(0.5, abs=0.05)
    assert gen.PRESETS["conflict"].conflict_by == "item"


def test_cli_overrides_preset(tmp_path, capsys):
    assert generate_main(["--out", str(tmp_path), "--preset", "tiny", "--rows", "500", "--seed", "3",
                          "--conflict-fraction", "0.2"]) == 0
    assert gen.is_complete(dataclasses.replace(TINY, rows=500, seed=3, conflict_fraction=0.2), tmp_path)
    assert generate_main(["--out", str(tmp_path / "bad"), "--preset", "tiny", "--rows", "-5"]) == 2
    assert capsys.readouterr().err == "error: GeneratorConfig: sizes and counts must be >= 1\n"


@pytest.mark.parametrize("bad", [
    {"domain_fractions": (0.5, 0.5, 0.5)},
    {"positive_rates": (0.4, 0.0, 0.1, 0.1)},
    {"conflict_tasks": ("click", "nope")},
    {"tasks": ("click",)},
])
def test_bad_config_rejected(bad):
    with pytest.raises(ConfigError):
        dataclasses.replace(TINY, **bad)
