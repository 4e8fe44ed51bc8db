"""ray_jobs.prepare on any data set: readers (headerless CSV, sep, na_values, strip, many files),
random and pre-split inputs, labels from values or a threshold, domains from a value map,
recipe-relative paths, and the errors that name the file, the column, the row and the value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from modules.spec import DatasetSpec
from modules.strict import ConfigError
from ray_jobs.core.errors import RawDataError
from ray_jobs.data.prepare import PART, prepare
from ray_jobs.data.recipe import load_recipe
from ray_jobs.data.splits import fnv1a64, splitmix64, uniform

SPLITS = ("train", "valid", "test")
N = 600
WORK = ["Private", "State-gov", "Self-emp", "Never-worked"]


def _data_files(directory: Path) -> dict[str, bytes]:
    """Every written file but prepare.json (which quotes the recipe, so differs by reader keys)."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*"))
            if p.is_file() and p.name != "prepare.json"}


def _table(out: Path, split: str) -> pd.DataFrame:
    return pq.read_table(out / split / PART).to_pandas()


def _frame(n: int = N, seed: int = 0) -> pd.DataFrame:
    """An Adult-like table: no dates, no user ids, string labels; `age` missing now and then."""
    rng = np.random.default_rng(seed)
    age = rng.integers(17, 80, n).astype(object)
    age[rng.random(n) < 0.05] = None
    return pd.DataFrame({
        "age": age,
        "workclass": rng.choice(WORK, n, p=[0.6, 0.2, 0.15, 0.05]),
        "hours": rng.integers(1, 99, n),
        "income": rng.choice(["<=50K", ">50K"], n, p=[0.7, 0.3]),
    })


def _recipe(directory: Path, log: dict, **overrides) -> Path:
    recipe = {
        "log": log,
        "split": {"random": {"valid": 0.2, "test": 0.2, "seed": 3}},
        "domain": {"column": "workclass", "map": {"Private": "private", "State-gov": "public"}},
        "tasks": [{"column": "income", "name": "rich", "positive": [">50K"]},
                  {"column": "hours", "name": "long_hours", "threshold": 45}],
        "sparse": [{"column": "workclass", "min_count": 1},
                   {"column": "age", "name": "age_bucket", "buckets": {"width": 10}, "min_count": 1}],
        "dense": [{"column": "hours"}],
        "group": None,
    }
    recipe.update(overrides)
    path = directory / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _write_messy(frame: pd.DataFrame, path: Path) -> None:
    """Headerless, ", " separated, "?" for missing (the UCI Adult file's habits)."""
    lines = [", ".join("?" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in row)
             for row in frame.itertuples(index=False)]
    path.write_text("\n".join(lines) + "\n")


MESSY = {"path": "raw/adult.data", "format": "csv", "header": False, "names": ["age", "workclass", "hours", "income"],
         "sep": ",", "strip": True, "na_values": ["?"]}


@pytest.fixture()
def clean(tmp_path) -> tuple[Path, pd.DataFrame]:
    """The frame as a plain headed CSV and its prepared output."""
    frame = _frame()
    (tmp_path / "clean").mkdir()
    frame.to_csv(tmp_path / "clean" / "log.csv", index=False)
    out = tmp_path / "clean_out"
    prepare(load_recipe(_recipe(tmp_path / "clean", {"path": "log.csv"})), out)
    return out, frame


def test_headerless_messy_csv_reads_like_the_clean_one(tmp_path, clean):
    out, frame = clean
    (tmp_path / "messy" / "raw").mkdir(parents=True)
    _write_messy(frame, tmp_path / "messy" / "raw" / "adult.data")
    messy_out = tmp_path / "messy_out"
    prepare(load_recipe(_recipe(tmp_path / "messy", MESSY)), messy_out)
    assert _data_files(messy_out) == _data_files(out)
    # the strings were trimmed and "?" is missing: the age buckets' vocabulary has no " ?" entry
    vocab = pd.read_parquet(out / "vocab" / "workclass.parquet")
    assert sorted(vocab.value) == sorted(WORK)
    # labels against the raw frame, row by row (sample_id = row in the raw file)
    for split in SPLITS:
        t = _table(out, split)
        raw = frame.iloc[t.sample_id.to_numpy()]
        assert (t.rich.to_numpy() == (raw.income == ">50K").to_numpy()).all()
        assert (t.long_hours.to_numpy() == (raw.hours >= 45).to_numpy()).all()
        assert "group_id" not in t.columns


def test_domain_map_sends_unmapped_values_to_other(clean):
    out, frame = clean
    spec = DatasetSpec.load(out)
    assert spec.domains == ("private", "public", "other") and spec.group_column is None
    expected = frame.workclass.map({"Private": 0, "State-gov": 1}).fillna(2).to_numpy()
    for split in SPLITS:
        t = _table(out, split)
        assert (t.domain.to_numpy() == expected[t.sample_id.to_numpy()]).all()


def test_many_files_glob_directory_tsv_and_parquet_give_the_same_output(tmp_path, clean):
    out, frame = clean
    parts = [frame.iloc[:250], frame.iloc[250:251], frame.iloc[251:]]
    for kind in ("csv", "tsv", "parquet"):
        folder = tmp_path / kind / "logs"
        folder.mkdir(parents=True)
        for i, part in enumerate(parts):
            name = folder / f"part-{i:02d}.{kind}"
            if kind == "parquet":
                part.astype({"age": "Int64"}).to_parquet(name, index=False)
            else:
                part.to_csv(name, index=False, sep="\t" if kind == "tsv" else ",")
        (folder / "_SUCCESS").write_text("")
        for path in ("logs", f"logs/part-*.{kind}"):
            got = tmp_path / kind / f"out-{path.count('*')}"
            prepare(load_recipe(_recipe(tmp_path / kind, {"path": path})), got)
            assert _data_files(got) == _data_files(out), (kind, path)


def test_bad_value_in_a_later_file_names_that_file_and_its_row(tmp_path):
    frame = _frame(40).astype({"hours": object})
    frame.loc[27, "hours"] = "many"
    (tmp_path / "logs").mkdir()
    frame.iloc[:20].to_csv(tmp_path / "logs" / "a.csv", index=False)
    frame.iloc[20:].to_csv(tmp_path / "logs" / "b.csv", index=False)
    with pytest.raises(RawDataError) as err:
        prepare(load_recipe(_recipe(tmp_path, {"path": "logs"})), tmp_path / "out")
    message = str(err.value)
    assert "b.csv" in message and "'hours'" in message and "row 7" in message and "'many'" in message
    assert not (tmp_path / "out").exists()


def _fnv1a64_reference(text: str) -> int:
    h = 0xCBF29CE484222325
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 0x100000001B3) % 2 ** 64
    return h


def _splitmix64_reference(x: int) -> int:
    m = 2 ** 64
    z = (x + 0x9E3779B97F4A7C15) % m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % m
    return z ^ (z >> 31)


def test_split_hashes_match_a_plain_python_reference():
    words = ["", "a", "user_17", "ünïcode", "x" * 40, "user_17"]
    assert fnv1a64(pa.array(words)).tolist() == [_fnv1a64_reference(w) for w in words]
    xs = [0, 1, 2 ** 63, 2 ** 64 - 1]
    assert splitmix64(np.array(xs, np.uint64)).tolist() == [_splitmix64_reference(x) for x in xs]
    salt = _splitmix64_reference(5)
    expected = [(_splitmix64_reference(_fnv1a64_reference(w) ^ salt) >> 11) / 2 ** 53 for w in words]
    assert uniform(fnv1a64(pa.array(words)), seed=5).tolist() == expected


def test_random_split_by_row_fractions_and_same_bytes_twice(tmp_path):
    frame = _frame(4000)
    frame.to_csv(tmp_path / "log.csv", index=False)
    recipe = load_recipe(_recipe(tmp_path, {"path": "log.csv"}, split={"random": {"valid": 0.1, "test": 0.25}}))
    first = prepare(recipe, tmp_path / "a")
    prepare(recipe, tmp_path / "b")
    assert _data_files(tmp_path / "a") == _data_files(tmp_path / "b")
    rows = first["rows"]
    assert sum(rows.values()) == 4000
    # binomial sd at n=4000: ~19 rows (valid), ~27 (test); 4 sd tolerance
    assert abs(rows["valid"] - 400) < 80 and abs(rows["test"] - 1000) < 110
    prepare(load_recipe(_recipe(tmp_path, {"path": "log.csv"},
                                             split={"random": {"valid": 0.1, "test": 0.25, "seed": 1}})),
                         tmp_path / "c")
    assert not _table(tmp_path / "a", "test").sample_id.equals(_table(tmp_path / "c", "test").sample_id)


def test_keyed_random_split_keeps_keys_together_and_ignores_row_order(tmp_path):
    frame = _frame(3000)
    frame["user"] = [f"u{i % 300}" for i in range(len(frame))]
    split = {"random": {"valid": 0.2, "test": 0.2, "key": "user"}}
    frame.to_csv(tmp_path / "log.csv", index=False)
    frame.sample(frac=1.0, random_state=1).to_csv(tmp_path / "shuffled.csv", index=False)
    users_of = {}
    for name in ("log.csv", "shuffled.csv"):
        raw = pd.read_csv(tmp_path / name)
        out = tmp_path / f"out-{name}"
        prepare(load_recipe(_recipe(tmp_path, {"path": name}, split=split)), out)
        users_of[name] = {s: set(raw.user.iloc[_table(out, s).sample_id.to_numpy()]) for s in SPLITS}
        sets = users_of[name]
        assert not (sets["train"] & sets["valid"]) and not (sets["train"] & sets["test"]) and not (sets["valid"] & sets["test"])
    assert users_of["log.csv"] == users_of["shuffled.csv"]
    test_users = len(users_of["log.csv"]["test"])
    assert abs(test_users - 60) < 30  # 300 users, p = 0.2: sd ~7
    expected = {u for u in frame.user.unique() if _u(u, 0) < 0.2}
    assert users_of["log.csv"]["test"] == expected


def _u(text: str, seed: int) -> float:
    return (_splitmix64_reference(_fnv1a64_reference(text) ^ _splitmix64_reference(seed)) >> 11) / 2 ** 53


def test_pre_split_files_equal_the_day_split_of_the_same_rows(tmp_path):
    frame = _frame(300)
    frame["day"] = np.repeat([20240101, 20240102, 20240103], 100)
    sizes = {"train": slice(0, 100), "valid": slice(100, 200), "test": slice(200, 300)}
    (tmp_path / "pre").mkdir()
    for name, rows in sizes.items():
        frame.iloc[rows].drop(columns="day").to_csv(tmp_path / "pre" / f"{name}.csv", index=False, header=False)
    frame.to_csv(tmp_path / "log.csv", index=False)
    day = prepare(load_recipe(_recipe(tmp_path, {"path": "log.csv"},
                                      split={"column": "day", "train_days": 1})), tmp_path / "day")
    names = ["age", "workclass", "hours", "income"]
    files = {"train": "pre/train.csv", "valid": "pre/valid.csv", "test": "pre/test.csv"}
    pre = prepare(load_recipe(_recipe(tmp_path, {"header": False, "names": names}, split={"files": files})),
                  tmp_path / "files")
    assert pre["rows"] == day["rows"] == {"train": 100, "valid": 100, "test": 100}
    assert _data_files(tmp_path / "files") == _data_files(tmp_path / "day")
    with pytest.raises(ConfigError, match="leave log.path out"):
        load_recipe(_recipe(tmp_path, {"path": "log.csv"}, split={"files": files}))


def test_recipe_paths_resolve_against_the_recipe_folder_not_the_cwd(tmp_path, monkeypatch):
    frame = _frame(100)
    (tmp_path / "project" / "raw").mkdir(parents=True)
    frame.to_csv(tmp_path / "project" / "raw" / "log.csv", index=False)
    recipe = _recipe(tmp_path / "project", {"path": "raw/log.csv"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    summary = prepare(load_recipe(recipe), tmp_path / "out")
    assert sum(summary["rows"].values()) == 100


def _case(tmp_path: Path, frame: pd.DataFrame, **overrides) -> Path:
    frame.to_csv(tmp_path / "log.csv", index=False)
    return _recipe(tmp_path, {"path": "log.csv"}, **overrides)


def _with(column: str, row: int, value) -> pd.DataFrame:
    frame = _frame(60)
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value
    return frame


@pytest.mark.parametrize("make, expected", [
    (lambda d: _case(d, _with("income", 4, None)), ["log.csv", "'income'", "row 4", "value None", "missing"]),
    (lambda d: _case(d, _with("hours", 9, "lots")), ["log.csv", "'hours'", "row 9", "'lots'", "not a number"]),
    (lambda d: _case(d, _with("hours", 11, None)), ["log.csv", "'hours'", "row 11", "missing", "long_hours"]),
    (lambda d: _case(d, _frame(60), tasks=[{"column": "income", "name": "rich", "positive": [">50k"]}]),
     ["log.csv", "task 'rich'", "'>50k'", "never appears", "'income'", "'>50K'"]),
    (lambda d: _case(d, _frame(60), domain={"column": "workclass", "map": {"Privat": "private"}}),
     ["log.csv", "domain.map", "'Privat'", "never appears", "'workclass'"]),
    (lambda d: _case(d, _frame(60), tasks=[{"column": "income"}]),
     ["log.csv", "'income'", "row 0", "not a label in {0, 1}", "positive"]),
    (lambda d: _case(d, _with("workclass", 5, None), split={"random": {"key": "workclass"}}),
     ["log.csv", "'workclass'", "row 5", "missing", "split.random.key"]),
])
def test_rule_errors_name_file_column_row_and_value(tmp_path, make, expected):
    recipe = make(tmp_path)
    with pytest.raises(RawDataError) as err:
        prepare(load_recipe(recipe), tmp_path / "out")
    for part in expected:
        assert part in str(err.value), (part, str(err.value))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("overrides, match", [
    ({"split": {"random": {"valid": 0.5, "test": 0.5}}}, "sum to less than 1"),
    ({"split": {"column": "day", "train_days": 2, "random": {}}}, "exactly one of"),
    ({"split": {}}, "exactly one of"),
    ({"tasks": [{"column": "income", "positive": [">50K"], "threshold": 1}]}, "at most one of"),
    ({"log": {"path": "log.csv", "header": False}}, "needs `names`"),
    ({"log": {"path": "log.csv", "sep": ", "}}, "one character"),
    ({"log": {"format": "csv"}}, "log.path is required"),
    ({"group": "nope"}, "group 'nope' must name a sparse feature"),
])
def test_recipe_mistakes_are_config_errors(tmp_path, overrides, match):
    log = overrides.pop("log", {"path": "log.csv"})
    with pytest.raises(ConfigError, match=match):
        load_recipe(_recipe(tmp_path, log, **overrides))


def test_mistyped_data_path_is_refused_not_generated(tmp_path, capsys):
    from ray_jobs.train import main

    typo = tmp_path / "dat" / "kuairnad"
    assert main(["--data", str(typo), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(typo) in err and "spec.json missing" in err
    assert not typo.exists()


def test_warnings_on_the_console_and_in_prepare_json(tmp_path, capsys):
    """Few buckets from a tied column, a feature all OOV in valid/test, a task with few positives."""
    frame = _frame(400)
    frame["hours"] = np.where(np.arange(400) % 10 == 0, 60, 40)  # 2 distinct values: 10 quantiles -> 2 buckets
    frame["serial"] = [f"s{i}" for i in range(400)]  # unique per row: never in vocabulary outside train
    recipe = _case(tmp_path, frame, sparse=[
        {"column": "workclass", "min_count": 1}, {"column": "serial", "min_count": 1},
        {"column": "hours", "name": "hours_q", "buckets": {"quantiles": 10}, "min_count": 1}])
    capsys.readouterr()
    summary = prepare(load_recipe(recipe), tmp_path / "out")
    console = capsys.readouterr().out
    expected = [
        "feature 'hours_q': buckets.quantiles asked 10 buckets, got 2",
        "feature 'serial': 100% of valid rows are out of vocabulary",
        "feature 'serial': 100% of test rows are out of vocabulary",
    ]
    labels = {"rich": frame.income == ">50K", "long_hours": frame.hours >= 45}
    for split in ("valid", "test"):
        ids = _table(tmp_path / "out", split).sample_id.to_numpy()
        for task, label in labels.items():
            positives = int(label.to_numpy()[ids].sum())
            if positives < 20:
                expected.append(f"task {task!r}: {positives} positive(s) in {split} (< 20)")
    assert any(e.startswith("task 'long_hours'") for e in expected)  # 10% of ~80 rows: the case is exercised
    written = yaml.safe_load((tmp_path / "out" / "prepare.json").read_text())["warnings"]
    assert written == summary["warnings"] and len(written) == len(expected)
    for part in expected:
        assert any(w.startswith(part) for w in written), (part, written)
        assert f"[seesaw] prepare: {part}" in console
    assert not any("'workclass'" in w for w in written)
