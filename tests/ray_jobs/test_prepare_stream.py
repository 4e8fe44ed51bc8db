"""The streaming prepare (`--stream`) writes the same bytes as the in-memory one, for every
split kind, many small batches and several row groups; its errors name file, column and row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from ray_jobs.core.errors import RawDataError
from ray_jobs.data import prepare as P
from ray_jobs.data import stream as S
from ray_jobs.data.raw_files import write_census
from ray_jobs.data.recipe import load_recipe
from ray_jobs.prepare import main

ROOT = Path(__file__).resolve().parents[2]


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture()
def small_row_groups(monkeypatch):
    """Row groups of 4,000 rows in both paths, so the streaming writer cuts several."""
    monkeypatch.setattr(P, "ROW_GROUP_ROWS", 4000)
    monkeypatch.setattr(S, "MERGE_EVERY", 3)  # merge the per-batch counts several times too


def test_kuairand_streaming_equals_in_memory(tmp_path, small_row_groups):
    recipe = load_recipe(ROOT / "recipes" / "kuairand.yaml")
    memory = P.prepare(recipe, tmp_path / "memory")
    streamed = P.prepare(recipe, tmp_path / "stream", streaming=True, batch_rows=2500)
    assert streamed == memory
    assert pq.ParquetFile(tmp_path / "stream" / "train" / P.PART).metadata.num_row_groups == 10  # 37,993 rows
    assert _files(tmp_path / "stream") == _files(tmp_path / "memory")


@pytest.mark.parametrize("split", [
    {"random": {"valid": 0.1, "test": 0.2, "seed": 4}},
    {"random": {"valid": 0.1, "test": 0.2, "key": "education"}},
    {"files": {"train": "raw/train-*.data", "valid": "raw/valid.data", "test": "raw/test.data"}},
])
def test_census_streaming_equals_in_memory_for_every_split_kind(tmp_path, small_row_groups, split):
    recipe = yaml.safe_load((ROOT / "recipes" / "census.yaml").read_text())
    recipe["split"] = split
    recipe["sparse"].append({"column": "hours_per_week", "name": "hours_log", "buckets": {"log_base": 2}})
    if "files" in split:
        del recipe["log"]["path"]
        for name, rows, seed in (("train-0", 6000, 1), ("train-1", 3000, 2), ("valid", 1500, 3), ("test", 2000, 4)):
            write_census(tmp_path / "raw" / f"{name}.data", rows=rows, seed=seed)
    else:
        recipe["log"]["path"] = "raw/census.data"
        write_census(tmp_path / "raw" / "census.data", rows=12000, seed=1)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main([str(path), "--out", str(tmp_path / "memory")]) == 0
    assert main([str(path), "--out", str(tmp_path / "stream"), "--stream", "--batch-rows", "1000"]) == 0
    assert _files(tmp_path / "stream") == _files(tmp_path / "memory")
    assert pq.ParquetFile(tmp_path / "stream" / "train" / P.PART).metadata.num_row_groups >= 2


def test_streaming_error_in_a_late_batch_names_file_and_row_and_writes_nothing(tmp_path):
    frame = pd.DataFrame({"user_id": np.arange(300) % 7, "day": 20240101 + np.arange(300) // 100,
                          "click": np.arange(300) % 2, "seg": "a"})
    frame.loc[250, "click"] = 3
    (tmp_path / "logs").mkdir()
    frame.iloc[:120].to_csv(tmp_path / "logs" / "a.csv", index=False)
    frame.iloc[120:].to_csv(tmp_path / "logs" / "b.csv", index=False)
    recipe = {"log": {"path": "logs"}, "split": {"column": "day", "train_days": 1},
              "domain": {"column": "seg"}, "tasks": [{"column": "click"}],
              "sparse": [{"column": "user_id", "role": "user"}], "min_count": 1}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    with pytest.raises(RawDataError) as err:
        P.prepare(load_recipe(tmp_path / "recipe.yaml"), tmp_path / "out", streaming=True, batch_rows=16)
    message = str(err.value)
    assert "b.csv" in message and "'click'" in message and "row 130" in message and "value 3" in message
    assert not (tmp_path / "out").exists()


def test_benchmark_log_generator_and_recipe_stream_like_in_memory(tmp_path, small_row_groups):
    """The scale benchmark's inputs (BENCHMARKS.md), small: the chunked raw-log generator and
    recipes/raw_log.yaml; rows per file and day as asked, both paths the same bytes."""
    from ray_jobs.data.raw_files import write_log

    paths = write_log(tmp_path / "raw_log", rows=9000, files=3, chunk=1000, users=500, items=800)
    frames = [pd.read_csv(p) for p in paths]
    assert [len(f) for f in frames] == [3000, 3000, 3000]
    log = pd.concat(frames, ignore_index=True)
    assert log.date.is_monotonic_increasing and log.date.nunique() == 14 and set(log.page) == {"feed", "search", "mall"}
    recipe = load_recipe(ROOT / "recipes" / "raw_log.yaml")
    memory = P.prepare(recipe, tmp_path / "memory", raw_dir=tmp_path)
    streamed = P.prepare(recipe, tmp_path / "stream", raw_dir=tmp_path, streaming=True, batch_rows=700)
    assert memory == streamed and sum(memory["rows"].values()) == 9000
    assert _files(tmp_path / "stream") == _files(tmp_path / "memory")
