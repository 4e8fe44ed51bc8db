"""Batch prediction with an exported program (`ray_jobs.serving.export`) over Ray Data.

Rows stream through `map_batches` into a pool of scorer actors, each holding one loaded
program, so the same call scores a local directory or a bucket on a cluster. Every input file
is validated first with the checks training uses (`ray_jobs.data.dataset.validate_file`, model
columns only: labels are not needed): a missing column or an id outside its table fails with
the file, column and value before any row is scored.

Output: Parquet files under `out`, one row per input row, `sample_id` first when the input has
the spec's id column, then `pred_<task>` (probability) per task, the column names of the run's
`test_predictions.parquet`, so the two join on `sample_id`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray
import torch

from modules.spec import DatasetSpec
from modules.strict import from_dict
from ray_jobs.core.errors import DataError
from ray_jobs.core.log import logger
from ray_jobs.core.storage import arrow_paths, local_copy, location, open_input
from ray_jobs.data.collate import flat_features
from ray_jobs.data.dataset import read_spec, validate_file
from ray_jobs.data.ingest import read_parquet
from ray_jobs.data.prepare import MARKER as PREPARE_MARKER
from ray_jobs.data.prepare import Encoders, encode, load_raw
from ray_jobs.data.recipe import Recipe
from ray_jobs.evaluation.predictions import PREDICTION_PREFIX
from ray_jobs.serving.export import EXPORT_FILE, PROGRAM_FILE, VOCAB_DIR

DEFAULT_BATCH = 4096


class ExportedModel:
    """A loaded export directory: the program, its spec and the KJT key order it expects."""

    def __init__(self, model_dir: str | Path) -> None:
        _check_export(model_dir)
        with local_copy(model_dir) as directory:  # on storage: downloaded (torch.export.load reads a local file)
            self.spec = DatasetSpec.load(directory)
            meta = json.loads((directory / EXPORT_FILE).read_text())
            self.sources = [source for _, source in meta["kjt_keys"]]
            self.program = torch.export.load(directory / PROGRAM_FILE).module()

    @torch.no_grad()
    def probabilities(self, table: pa.Table) -> np.ndarray:
        """[B, T] float32 probabilities of the rows of `table` (already validated)."""
        return self.program(*flat_features(table, self.spec, self.sources)).numpy()

    def score(self, table: pa.Table) -> pa.Table:
        """`sample_id` (when present) + one `pred_<task>` column per task."""
        probs = self.probabilities(table)
        columns: dict[str, pa.Array] = {}
        if self.spec.id_column is not None and self.spec.id_column in table.column_names:
            columns[self.spec.id_column] = table.column(self.spec.id_column)
        for t, task in enumerate(self.spec.tasks):
            columns[PREDICTION_PREFIX + task] = pa.array(probs[:, t])
        return pa.table(columns)


class _Scorer:
    """Ray Data actor: one program per actor, loaded once."""

    def __init__(self, model_dir: str) -> None:
        torch.set_num_threads(1)
        self.model = ExportedModel(model_dir)

    def __call__(self, batch: pa.Table) -> pa.Table:
        return self.model.score(batch)


RAW_SUFFIXES = (".csv", ".tsv")


def encode_raw_log(model_dir: str | Path, raw: str | Path, work_dir: str | Path) -> str:
    """Encodes a raw log (the columns of the log the data set was prepared from; side tables
    as the recipe names them, relative paths next to `raw`) with the export's saved encoders,
    exactly as `ray_jobs.prepare` encoded the training rows; returns the Parquet file written
    under `work_dir`. Unseen values get the OOV id, as in preparation."""
    if not location(raw).is_local:
        raise DataError(f"{raw}: raw logs are read from local paths (the recipe's side tables sit next to the "
                        f"log); copy it to local disk, or score the encoded Parquet at its URI")
    model_dir, raw = location(model_dir), location(raw).local
    marker = model_dir.child(PREPARE_MARKER)
    if not model_dir.child(VOCAB_DIR).is_dir() or not marker.exists():
        raise DataError(f"{raw}: a raw log, but {model_dir} holds no encoders ({VOCAB_DIR}/, {PREPARE_MARKER}): "
                        "the model was not trained on a prepared data set; pass encoded Parquet instead")
    recipe = from_dict(Recipe, json.loads(marker.read_text())["recipe"], where=str(marker))
    recipe = replace(recipe, log=replace(recipe.log, path=str(raw.resolve())), root=str(raw.resolve().parent))
    with local_copy(model_dir.child(VOCAB_DIR)) as vocab:
        table = encode(load_raw(recipe), recipe, Encoders.load(vocab))
    path = Path(work_dir) / f"{raw.stem}.parquet"
    pq.write_table(table, path)
    return str(path)


def input_files(model_dir: str | Path, data: str | Path, work_dir: str | Path) -> list[str]:
    """Parquet files to score: `data` itself, the Parquet under a directory, or a raw log
    (.csv/.tsv) encoded into `work_dir` first (`encode_raw_log`)."""
    if Path(data).suffix.lower() in RAW_SUFFIXES:
        return [encode_raw_log(model_dir, data, work_dir)]
    return parquet_files(data)


def parquet_files(data: str | Path) -> list[str]:
    """The Parquet files of `data` (a file, or a directory searched recursively; a path or a URI)."""
    place = location(data, "--data")
    if place.is_file():
        return [str(place)]
    files = [str(p) for p in place.files(".parquet", recursive=True)]
    if not files:
        raise DataError(f"{data}: no Parquet files to score")
    return files


def _check_export(model_dir: str | Path) -> None:
    if not location(model_dir, "--model").child(PROGRAM_FILE).exists():
        raise DataError(f"{model_dir}: no {PROGRAM_FILE}; not an export directory (python -m ray_jobs.export)")


def validate_inputs(model_dir: str | Path, files: list[str]) -> int:
    """Checks every file like training data (model columns only); returns their row count."""
    _check_export(model_dir)
    spec = read_spec(model_dir)
    return sum(validate_file(f, spec, labels=False) for f in files)


def predict_files(model_dir: str | Path, files: list[str], out: str | Path, batch_size: int = DEFAULT_BATCH,
                  concurrency: int = 1) -> int:
    """Validates `files` against the model's spec, scores them into Parquet under `out` with
    Ray Data (joining the running Ray, else starting a local one); returns the rows scored."""
    rows = validate_inputs(model_dir, files)
    spec = read_spec(model_dir)
    columns = [c for c in (*spec.feature_names, *spec.dense_features, spec.domain_column) if c]
    if spec.id_column is not None and all(spec.id_column in pq.read_schema(open_input(f)).names for f in files):
        columns.append(spec.id_column)
    dataset = read_parquet(files, columns=list(dict.fromkeys(columns)))
    scored = dataset.map_batches(_Scorer, fn_constructor_args=(str(model_dir),), batch_format="pyarrow",
                                 batch_size=batch_size, concurrency=concurrency)
    filesystem, (path,) = arrow_paths([str(out)])  # `out` a path or a storage URI
    scored.write_parquet(path, filesystem=filesystem)
    logger.info("scored %d rows of %d file(s) into %s", rows, len(files), out)
    return rows
