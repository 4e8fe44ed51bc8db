"""Bad input fails before training, with an error that names the file, column and value."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modules.spec import DatasetSpec
from modules.strict import ConfigError
from ray_jobs.core.errors import DataError
from ray_jobs.core.config import load_config
from ray_jobs.data.dataset import validate_file, validate_split
from tests.factories import random_table, tiny_spec


def _write(tmp_path, table: pa.Table, name: str = "part.parquet") -> str:
    path = tmp_path / name
    pq.write_table(table, path)
    return str(path)


def _replace(table: pa.Table, column: str, values) -> pa.Table:
    return table.set_column(table.schema.get_field_index(column), column, values)


@pytest.fixture
def good():
    return random_table(tiny_spec(), 50, seed=1)


def test_good_file_passes(tmp_path, good):
    assert validate_file(_write(tmp_path, good), tiny_spec()) == 50


@pytest.mark.parametrize(
    "column, values, message",
    [
        ("item_id", np.r_[np.zeros(49, np.int64), 60], r"'item_id' has value 60 outside \[0, 59\]"),
        ("user_id", np.r_[np.zeros(49, np.int64), -1], r"'user_id' has value -1 outside \[0, 39\]"),
        ("task0", np.r_[np.zeros(49, np.int8), 2].astype(np.int8), r"'task0' has value 2 outside \[0, 1\]"),
        ("domain", np.r_[np.zeros(49, np.int64), 5], r"'domain' has value 5 outside \[0, 1\] \(domain id"),
        ("d0", np.r_[np.zeros(49, np.float32), np.nan].astype(np.float32), r"'d0' has non-finite value nan at row 49"),
        ("d1", np.r_[np.zeros(49, np.float32), np.inf].astype(np.float32), r"'d1' has non-finite value inf"),
        ("task1", np.r_[np.zeros(49), np.nan], r"'task1' has non-finite value nan"),
        ("task1", np.r_[np.zeros(49), 0.5], r"'task1' has value 0.5 at row 49 outside \{0, 1\}"),
    ],
)
def test_bad_values_name_file_column_and_value(tmp_path, good, column, values, message):
    path = _write(tmp_path, _replace(good, column, pa.array(values)))
    with pytest.raises(DataError, match=message) as info:
        validate_file(path, tiny_spec())
    assert path in str(info.value)


def test_bad_multi_hot_id(tmp_path, good):
    hist = pa.array([[1, 2]] * 49 + [[99]], pa.list_(pa.int64()))
    with pytest.raises(DataError, match=r"'hist' has value 99 outside \[0, 59\]"):
        validate_file(_write(tmp_path, _replace(good, "hist", hist)), tiny_spec())


def test_missing_column_and_wrong_dtype(tmp_path, good):
    with pytest.raises(DataError, match=r"missing column 'hour'"):
        validate_file(_write(tmp_path, good.drop_columns(["hour"])), tiny_spec())
    as_text = _replace(good, "item_id", pa.array([str(v) for v in good.column("item_id").to_pylist()]))
    with pytest.raises(DataError, match=r"column 'item_id' has type string, expected int"):
        validate_file(_write(tmp_path, as_text, "text.parquet"), tiny_spec())


def test_nulls_are_refused(tmp_path, good):
    with_null = _replace(good, "author_id", pa.array([None] + [1] * 49, pa.int64()))
    with pytest.raises(DataError, match=r"'author_id' has 1 null value"):
        validate_file(_write(tmp_path, with_null), tiny_spec())


def test_empty_file_and_empty_data_set(tmp_path, good):
    with pytest.raises(DataError, match=r"empty file \(0 rows\)"):
        validate_file(_write(tmp_path, good.slice(0, 0)), tiny_spec())
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match=r"no Parquet files for split 'train'"):
        validate_split(tmp_path, "train", tiny_spec())


def test_not_a_parquet_file(tmp_path):
    path = tmp_path / "junk.parquet"
    path.write_text("hello")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        validate_file(str(path), tiny_spec())


def test_config_typos_and_wrong_types(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("train:\n  epocs: 3\n")
    with pytest.raises(ConfigError, match=r"job.yaml.train: unknown key\(s\) \['epocs'\]"):
        load_config(path)
    path.write_text("workers:\n  num_workers: two\n")
    # a count or a [min, max] range (elastic workers): the error names the key, the value and both forms
    with pytest.raises(ConfigError, match=r"job.yaml.workers.num_workers: 'two' matches none of int \| tuple\[int, \.\.\.\] "
                                          r"\(expected an integer, got 'two'; expected a list, got 'two'\)"):
        load_config(path)
    path.write_text("model:\n  arch: pepnet\n  params: {gama: 2}\n")
    from modules.dense.registry import parse_arch_config
    config = load_config(path)
    with pytest.raises(ConfigError, match=r"model.pepnet: unknown key\(s\) \['gama'\]"):
        parse_arch_config(config.model.arch, config.model.params)


def test_spec_typos(tmp_path):
    data = json.loads(tiny_spec().to_json())
    data["sparse_features"][0]["cardinalty"] = 3
    (tmp_path / "spec.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"sparse_features\[0\]: unknown key\(s\) \['cardinalty'\]"):
        DatasetSpec.load(tmp_path)


def test_train_cli_exits_2_before_starting_ray(tmp_path, good, capsys):
    from ray_jobs.train import main

    typo = tmp_path / "typo.yaml"
    typo.write_text("model:\n  arch: pepnett\n")
    assert main(["--config", str(typo)]) == 2
    assert "unknown model 'pepnett'" in capsys.readouterr().err

    data = tmp_path / "data"
    tiny_spec().save(data.mkdir() or data)
    for split in ("train", "valid", "test"):
        (data / split).mkdir()
        _write(data / split, good)
    bad = _replace(good, "item_id", pa.array(np.full(50, 1000, np.int64)))
    _write(data / "test", bad, "bad.parquet")
    job = tmp_path / "job.yaml"
    job.write_text(f"data:\n  path: {data}\n  generate: null\nmodel:\n  arch: sharedbottom\nruns_dir: {tmp_path / 'runs'}\n")
    assert main(["--config", str(job)]) == 2
    err = capsys.readouterr().err
    assert "bad.parquet" in err and "'item_id' has value 1000" in err
    assert not (tmp_path / "runs").exists(), "nothing half-written"
