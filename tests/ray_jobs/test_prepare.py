"""ray_jobs.prepare: determinism, train-only encoders, exact OOV cases, spec/column agreement,
and bad-input errors that name the file, the column and the value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from modules.spec import DatasetSpec
from modules.strict import ConfigError
from ray_jobs.core.errors import RawDataError
from ray_jobs.data.prepare import PART, RawLog, Encoders, encode, encode_with_vocab, fit_vocab, prepare
from ray_jobs.prepare import main
from ray_jobs.data.recipe import load_recipe

KUAIRAND = Path(__file__).resolve().parents[2] / "recipes" / "kuairand.yaml"
SPLITS = ("train", "valid", "test")


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def _table(out: Path, split: str) -> pd.DataFrame:
    return pq.read_table(out / split / PART).to_pandas()


@pytest.fixture(scope="module")
def kuairand(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kuairand")
    prepare(load_recipe(KUAIRAND), out)
    return out


@pytest.fixture(scope="module")
def kuairand_raw() -> pd.DataFrame:
    recipe = load_recipe(KUAIRAND)
    log = pd.read_csv(recipe.log.resolve(None, recipe.root), sep="\t")
    users = pd.read_csv(recipe.joins[0].source.resolve(None, recipe.root))
    return log.merge(users, on="user_id", how="left")


def test_kuairand_same_bytes_twice(kuairand, tmp_path):
    prepare(load_recipe(KUAIRAND), tmp_path)
    first, second = _files(kuairand), _files(tmp_path)
    assert sorted(first) == sorted(second)
    assert "prepare.json" in first and "vocab/user_id.parquet" in first
    assert first == second


def test_kuairand_spec_matches_columns(kuairand, kuairand_raw):
    spec = DatasetSpec.load(kuairand)
    days = {"train": kuairand_raw.date <= 20220419, "valid": kuairand_raw.date == 20220420,
            "test": kuairand_raw.date == 20220421}
    raw_users = {split: kuairand_raw.user_id[mask].tolist() for split, mask in days.items()}
    assert spec.tasks == ("is_click", "long_view", "is_comment", "is_follow", "is_forward", "like")
    assert spec.domains == ("full_active", "high_active", "middle_active", "other")
    assert spec.group_column == "group_id" and spec.domain_column == "domain"
    assert spec.feature("user_active_degree").role == "domain"
    assert spec.feature("video_id").role == "item" and spec.feature("user_id").embedding_dim == 32
    for split in SPLITS:
        table = pq.read_table(kuairand / split / PART)
        assert table.column_names == list(spec.required_columns())
        for f in spec.sparse_features:
            ids = table[f.name].to_numpy()
            assert str(table.schema.field(f.name).type) == "int64"
            assert ids.min() >= 0 and ids.max() < f.cardinality
            assert f.cardinality == len(pd.read_parquet(kuairand / "vocab" / f"{f.name}.parquet")) + 1
        assert all(str(table.schema.field(d).type) == "float" for d in spec.dense_features)
        assert all(str(table.schema.field(t).type) == "int8" for t in spec.tasks)
        domain = table["domain"].to_numpy()
        assert domain.dtype == np.int64 and domain.min() >= 0 and domain.max() < spec.num_domains
        # GAUC groups are the raw users: one group per raw user id, rare users not pooled in OOV
        assert table["group_id"].to_pylist() == raw_users[split]


def test_kuairand_splits_are_the_days_and_reencode_identically(kuairand, kuairand_raw):
    """Rows of each split are exactly that split's days, in log order: re-encoding the raw rows
    with the saved encoders reproduces every written file, and no test-day row is in train."""
    recipe, encoders = load_recipe(KUAIRAND), Encoders.load(kuairand)
    days = {"train": kuairand_raw.date <= 20220419, "valid": kuairand_raw.date == 20220420,
            "test": kuairand_raw.date == 20220421}
    for split, mask in days.items():
        expected = encode(RawLog(kuairand_raw[mask], {}), recipe, encoders).to_pandas()
        pd.testing.assert_frame_equal(_table(kuairand, split), expected)
    summary = yaml.safe_load((kuairand / "prepare.json").read_text())
    assert summary["rows"] == {"train": 37993, "valid": 2090, "test": 1745}
    assert summary["positive_rate"]["test"]["like"] == round(kuairand_raw.label[days["test"]].mean(), 6)


def test_kuairand_fitted_on_train_only(kuairand, kuairand_raw):
    fitted = Encoders.load(kuairand)
    train = kuairand_raw[kuairand_raw.date <= 20220419]
    cuts = np.unique(np.quantile(train.duration_ms, np.arange(1, 20) / 20))
    assert fitted.boundaries["duration_bucket"] == tuple(cuts)
    assert not np.array_equal(cuts, np.unique(np.quantile(kuairand_raw.duration_ms, np.arange(1, 20) / 20)))
    mean, std = fitted.dense["duration_ms"]
    assert mean == pytest.approx(np.log1p(train.duration_ms).mean())
    assert std == pytest.approx(np.log1p(train.duration_ms).std(ddof=0))
    dense = _table(kuairand, "train")["duration_ms"]
    assert abs(dense.mean()) < 1e-4 and dense.std(ddof=0) == pytest.approx(1.0, abs=1e-4)
    counts = train.video_id.value_counts()
    assert len(fitted.vocabs["video_id"]) == int((counts >= 10).sum())


# --- a small synthetic log with every OOV case spelt out --------------------------------------
# train (2 days): u1 x4, u2 x3, u3 x3, u4 x2 (< min_count 3); valid: u2, u5; test: u3, u6 x5
# (frequent, but only in test), u4, u1. Segments in train: a 7 rows, b 3, c 2 (< min_rows 3).
USERS = ["u1"] * 4 + ["u2"] * 3 + ["u3"] * 3 + ["u4"] * 2 + ["u2", "u5"] + ["u3"] + ["u6"] * 5 + ["u4", "u1"]
DATES = [20240101, 20240102] * 6 + [20240103] * 2 + [20240104] * 8
SEGMENTS = {"u1": "a", "u2": "a", "u3": "b", "u4": "c", "u5": "a", "u6": "d"}


def _write_raw(directory: Path, **columns) -> None:
    n = len(USERS)
    log = pd.DataFrame({"user_id": USERS, "date": DATES, "click": [i % 2 for i in range(n)],
                        "duration": [10 * i for i in range(n)]})
    for name, values in columns.items():
        log[name] = values
    log.to_csv(directory / "log.tsv", sep="\t", index=False)
    users = pd.DataFrame({"user_id": list(SEGMENTS), "seg": list(SEGMENTS.values())})
    users.to_csv(directory / "users.csv", index=False)


def _write_recipe(directory: Path, base: Path | str | None = None, **overrides) -> Path:
    base = directory if base is None else base
    recipe = {
        "log": {"path": f"{base}/log.tsv"},
        "joins": [{"path": f"{base}/users.csv", "key": "user_id"}],
        "split": {"column": "date", "train_days": 2},
        "domain": {"column": "seg", "min_rows": 3},
        "tasks": [{"column": "click"}],
        "sparse": [{"column": "user_id", "role": "user"}, {"column": "seg", "role": "domain", "min_count": 1},
                   {"column": "duration", "name": "duration_bucket", "buckets": {"quantiles": 4}}],
        "dense": [{"column": "duration"}],
        "min_count": 3,
    }
    recipe.update(overrides)
    path = directory / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture()
def synthetic(tmp_path) -> Path:
    _write_raw(tmp_path)
    out = tmp_path / "out"
    prepare(load_recipe(_write_recipe(tmp_path)), out)
    return out


def test_vocab_ids_rare_and_unseen_values_are_oov(synthetic):
    vocab = pd.read_parquet(synthetic / "vocab" / "user_id.parquet")
    assert list(vocab.value) == ["u1", "u2", "u3"] and list(vocab["count"]) == [4, 3, 3]
    assert list(vocab.id) == [1, 2, 3]
    assert list(_table(synthetic, "train").user_id) == [1] * 4 + [2] * 3 + [3] * 3 + [0] * 2
    assert list(_table(synthetic, "valid").user_id) == [2, 0]
    assert list(_table(synthetic, "test").user_id) == [3, 0, 0, 0, 0, 0, 0, 1]
    assert DatasetSpec.load(synthetic).feature("user_id").cardinality == 4


def test_domains_group_small_and_unseen_segments_as_other(synthetic):
    assert DatasetSpec.load(synthetic).domains == ("a", "b", "other")
    assert list(_table(synthetic, "train").domain) == [0] * 7 + [1] * 3 + [2] * 2
    assert list(_table(synthetic, "test").domain) == [1, 2, 2, 2, 2, 2, 2, 0]


def test_cli_with_raw_dir_override(tmp_path):
    _write_raw(tmp_path)
    recipe = _write_recipe(tmp_path, base="not/here")
    main([str(recipe), "--out", str(tmp_path / "out"), "--raw-dir", str(tmp_path)])
    summary = yaml.safe_load((tmp_path / "out" / "prepare.json").read_text())
    assert summary["rows"] == {"train": 12, "valid": 2, "test": 8}
    assert summary["positive_rate"]["valid"] == {"click": 0.5}


def test_encode_with_vocab_treats_7_and_7_0_alike_and_missing_as_oov():
    vocab = fit_vocab(pd.Series([7, 7, 8]), min_count=1)
    assert list(encode_with_vocab(pd.Series([8.0, 7.0, np.nan, 9.0]), vocab)) == [2, 1, 0, 0]


def _bad_log(tmp_path: Path, **columns) -> Path:
    _write_raw(tmp_path, **columns)
    return _write_recipe(tmp_path)


def _missing_column(tmp_path: Path) -> Path:
    _write_raw(tmp_path)
    return _write_recipe(tmp_path, tasks=[{"column": "clickz"}])


@pytest.mark.parametrize("make, expected", [
    (_missing_column, ["log.tsv", "users.csv", "'clickz'", "not found"]),
    (lambda d: _bad_log(d, click=[0] * 5 + [2] + [0] * (len(USERS) - 6)),
     ["log.tsv", "'click'", "row 5", "value 2", "not a label"]),
    (lambda d: _bad_log(d, date=DATES[:3] + [20241345] + DATES[4:]),
     ["log.tsv", "'date'", "row 3", "20241345", "not a date"]),
    (lambda d: _bad_log(d, date=DATES[:-1] + [20240109]),
     ["log.tsv", "'date'", "20240109", "after the split's 4 days"]),
    (lambda d: _bad_log(d, duration=["10"] * 4 + ["ten"] + ["10"] * (len(USERS) - 5)),
     ["log.tsv", "'duration'", "row 4", "'ten'", "not a number"]),
    (lambda d: _bad_log(d, user_id=USERS[:-1] + ["u9"]),
     ["log.tsv", "'user_id'", "'u9'", "no row in", "users.csv"]),
])
def test_bad_input_names_file_column_value(tmp_path, make, expected):
    recipe = make(tmp_path)
    with pytest.raises(RawDataError) as err:
        prepare(load_recipe(recipe), tmp_path / "out")
    for part in expected:
        assert part in str(err.value), (part, str(err.value))
    assert not (tmp_path / "out").exists()


def test_duplicate_join_key_and_empty_files(tmp_path):
    recipe = _bad_log(tmp_path)
    (tmp_path / "users.csv").write_text("user_id,seg\nu1,a\nu2,a\nu1,b\n")
    with pytest.raises(RawDataError, match=r"users\.csv: column 'user_id', row 2: value 'u1' appears more than once"):
        prepare(load_recipe(recipe), tmp_path / "out")
    (tmp_path / "log.tsv").write_text("user_id\tdate\tclick\tduration\n")
    with pytest.raises(RawDataError, match=r"log\.tsv: file has no rows"):
        prepare(load_recipe(recipe), tmp_path / "out")
    (tmp_path / "log.tsv").write_text("")
    with pytest.raises(RawDataError, match=r"log\.tsv: file is empty"):
        prepare(load_recipe(recipe), tmp_path / "out")


def test_recipe_rejects_unknown_keys_and_cli_reports_errors(tmp_path, capsys):
    _write_raw(tmp_path)
    recipe = _write_recipe(tmp_path, tasks=[{"column": "click", "nmae": "ctr"}])
    with pytest.raises(ConfigError, match=r"recipe\.yaml\.tasks\[0\]: unknown key\(s\) \['nmae'\]"):
        load_recipe(recipe)
    assert main([str(recipe), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "unknown key" in err and err.count("\n") == 1
