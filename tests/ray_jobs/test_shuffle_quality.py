"""The shuffle matters: on a log sorted by user, with labels clustered by user, training in file
order loses test AUC that the default shuffle recovers.

The log: a small synthetic data set whose users are numbered by their click rate in the
training split and whose training rows are then sorted by user (real logs are sorted by user,
then time, and user ids follow signup, which correlates with activity). In file order every
batch holds one or two users, and the shared layers drift with the users' label rate through
the epoch, so a user's embedding, fitted early, is read through layers that moved on. The
reference is the same rows shuffled once before training, trained in file order.

3 runs of SharedBottom, 1 worker, 3 epochs; the figure is the mean over tasks of the pooled
per-task test AUC, of the best-validation epoch.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ray_jobs.core.config import DataConfig, JobConfig, ModelConfig, TrainConfig, WorkersConfig
from ray_jobs.data.synthetic import PRESETS, generate
from ray_jobs.training.job import train

LOG = replace(PRESETS["tiny"], rows=8_000, num_users=100, num_items=1_000, num_authors=100, id_bias_scale=3.0,
              tasks=("click", "like"), positive_rates=(0.3, 0.1), files_per_split=1)


def _renumber_users(table: pa.Table, new_id: np.ndarray) -> pa.Table:
    return table.set_column(table.schema.get_field_index("user_id"), "user_id",
                            pa.array(new_id[table["user_id"].to_numpy()]))


def _sorted_log(root):
    """(sorted by user, shuffled once) copies of one data set."""
    source = generate(LOG, root / "source")
    train = pq.read_table(source / "train")
    users, clicks = train["user_id"].to_numpy(), train["click"].to_numpy().astype(float)
    rate = np.bincount(users, weights=clicks, minlength=LOG.num_users) / np.maximum(
        np.bincount(users, minlength=LOG.num_users), 1)
    new_id = np.empty(LOG.num_users, np.int64)
    new_id[np.argsort(rate, kind="stable")] = np.arange(LOG.num_users)  # user 0: the lowest click rate
    train = _renumber_users(train, new_id)
    train = train.take(np.argsort(train["user_id"].to_numpy(), kind="stable"))
    shuffled = train.take(np.random.default_rng(0).permutation(len(train)))
    out = []
    for name, rows in (("sorted", train), ("shuffled", shuffled)):
        data = root / name
        for split in ("valid", "test"):
            (data / split).mkdir(parents=True)
            pq.write_table(_renumber_users(pq.read_table(source / split), new_id), data / split / "part-00000.parquet")
        (data / "train").mkdir()
        pq.write_table(rows, data / "train" / "part-00000.parquet", row_group_size=1_024)
        shutil.copy(source / "spec.json", data / "spec.json")
        out.append(data)
    return out


def _test_auc(data, shuffle: str, runs_dir) -> float:
    config = JobConfig(
        name=f"shuffle-{shuffle}",
        data=DataConfig(path=str(data), generate=None, batch_size=256, shuffle=shuffle),
        model=ModelConfig(arch="sharedbottom"),
        train=TrainConfig(epochs=3, log_every=10**6, select_metric="val_mean_task_auc"),
        workers=WorkersConfig(num_workers=1),
        runs_dir=str(runs_dir),
    )
    run_dir = train(config, run_name=f"{data.name}-{shuffle}")
    return json.loads((run_dir / "metrics.json").read_text())["summary"]["test_mean_task_auc"]


def test_default_shuffle_matches_a_preshuffled_log_and_file_order_does_not(ray_session, tmp_path):
    sorted_log, shuffled_log = _sorted_log(tmp_path)
    default = _test_auc(sorted_log, DataConfig().shuffle, tmp_path / "runs")
    preshuffled = _test_auc(shuffled_log, "none", tmp_path / "runs")
    file_order = _test_auc(sorted_log, "none", tmp_path / "runs")
    assert abs(default - preshuffled) <= 0.01, (default, preshuffled, file_order)
    assert preshuffled - file_order > 0.03, (default, preshuffled, file_order)
