"""Every file name a run directory holds, and the one way to find a run's checkpoint.

A run directory (`<runs_dir>/<run name>/`) is what Ray Train writes (its checkpoints) plus
what the driver adds when the run ends:

    job.yaml                   the job config as run (`load_config` parses it back)
    metrics.json               summary + domain x task cells of the test split, spec, job
    test_predictions.parquet   one row per test sample (sample_id, labels, probabilities)
    latest_checkpoint          path of the last model checkpoint Ray Train committed
    best_checkpoint            path of the best-validation epoch's checkpoint (train.select_metric):
                               the model that scored the test split; evaluate uses it
    driver.lock                the running driver's PID/host (`training.run_lock`; empty when none)
    tensorboard/               rank 0's TensorBoard event files: training and validation curves
                               (`training.curves`; `tensorboard --logdir <run dir>/tensorboard`)
"""

from __future__ import annotations

from pathlib import Path

from modules.strict import ConfigError

JOB_FILE = "job.yaml"
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "test_predictions.parquet"
LATEST_CHECKPOINT_FILE = "latest_checkpoint"
BEST_CHECKPOINT_FILE = "best_checkpoint"
DRIVER_LOCK_FILE = "driver.lock"
RESULT_FILE = "result.json"  # a worker group's JSON payload, carried back in a small checkpoint
TENSORBOARD_DIR = "tensorboard"
DCP_METADATA_FILE = ".metadata"  # torch.distributed.checkpoint's marker of a checkpoint directory


def resolve_checkpoint(path: str | Path) -> tuple[Path, Path]:
    """(run directory, checkpoint directory) from either of them; a run directory gives its
    best checkpoint (the one metrics.json's test figures come from), else its latest."""
    path = Path(path).resolve()
    if (path / BEST_CHECKPOINT_FILE).exists():
        return path, Path((path / BEST_CHECKPOINT_FILE).read_text().strip())
    if (path / LATEST_CHECKPOINT_FILE).exists():
        return path, Path((path / LATEST_CHECKPOINT_FILE).read_text().strip())
    if (path / DCP_METADATA_FILE).exists():
        return path.parent, path
    raise ConfigError(f"{path}: neither a run directory ({LATEST_CHECKPOINT_FILE}) nor a checkpoint "
                      f"({DCP_METADATA_FILE})")
