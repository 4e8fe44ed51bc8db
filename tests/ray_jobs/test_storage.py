"""Storage locations (ray_jobs/core/storage.py): plain paths stay plain, URIs resolve to their
filesystem, and what cannot write remotely is staged. `memory://` (fsspec's in-process
filesystem, behind pyarrow's FSSpecHandler) stands in for a bucket: it is not local, so every
remote code path runs, offline, without a mock of Seesaw's own code."""

from __future__ import annotations

import uuid

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from modules.strict import ConfigError
from ray_jobs.core.config import DataConfig, JobConfig
from ray_jobs.core.storage import Location, arrow_paths, local_copy, local_mirror, location, staged_dir
from ray_jobs.data.dataset import prepare_dataset, read_spec, split_files, validate_split
from tests.factories import random_table, tiny_spec


def _bucket() -> str:
    return f"memory://seesaw-test-{uuid.uuid4().hex[:8]}"


def _write_parquet(table: pa.Table, place: Location) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    place.write_bytes(sink.getvalue().to_pybytes())


def test_plain_path_stays_a_plain_local_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    place = location("data/x")
    assert (str(place), place.scheme, place.is_local) == ("data/x", "", True)
    assert isinstance(place.filesystem, pafs.LocalFileSystem)
    place.child("a.txt").write_text("hi")  # relative: the process's working directory, as pathlib
    assert (tmp_path / "data/x/a.txt").read_text() == "hi"
    assert arrow_paths(["data/x/a.txt"]) == (None, ["data/x/a.txt"])  # readers' own default handling


def test_file_uri_is_the_same_place_as_its_path(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "b.parquet").write_bytes(b"x")
    (tmp_path / "d" / "sub" / "a.parquet").write_bytes(b"y")
    place = location(f"file://{tmp_path}/d")
    assert place.is_local and place.local == tmp_path / "d" and str(place) == f"file://{tmp_path}/d"
    assert [str(p) for p in place.files(".parquet")] == [f"file://{tmp_path}/d/b.parquet"]
    assert [p.name for p in place.files(".parquet", recursive=True)] == ["b.parquet", "a.parquet"]
    filesystem, paths = arrow_paths([f"file://{tmp_path}/d/b.parquet"])
    assert isinstance(filesystem, pafs.LocalFileSystem) and paths == [str(tmp_path / "d/b.parquet")]
    with pytest.raises(ConfigError, match="several storages"):
        arrow_paths([f"file://{tmp_path}/d/b.parquet", f"{_bucket()}/x.parquet"])


def test_unknown_scheme_and_missing_file_are_clear_errors():
    with pytest.raises(ConfigError, match=r"data.path 'nosuch://b/x': unknown storage scheme 'nosuch'"):
        location("nosuch://b/x", "data.path")
    missing = location(_bucket()).child("spec.json")
    with pytest.raises(ConfigError, match=rf"{missing}: cannot read"):
        missing.read_text()
    bucket = location(_bucket())
    with pytest.raises(ConfigError, match=rf"{bucket}/spec.json: spec file not found"):
        read_spec(bucket)


def test_staged_dir_uploads_only_a_complete_directory_and_local_copy_reads_it_back(tmp_path):
    target = location(_bucket()).child("export")
    with pytest.raises(RuntimeError):
        with staged_dir(target) as directory:
            (directory / "half.bin").write_bytes(b"1")
            raise RuntimeError("writer failed")
    assert not target.exists()  # nothing half-written reaches storage
    with staged_dir(target) as directory:
        (directory / "nested").mkdir()
        (directory / "nested" / "model.bin").write_bytes(b"\x00\x01")
    assert target.child("nested", "model.bin").read_bytes() == b"\x00\x01"
    with local_copy(target) as copy:
        assert (copy / "nested" / "model.bin").read_bytes() == b"\x00\x01"
    with staged_dir(tmp_path / "plain") as directory:  # a local target is written in place
        assert directory == tmp_path / "plain" and directory.is_dir()


def test_a_data_set_on_storage_validates_like_a_local_one_and_is_never_generated(tmp_path):
    """Splits on (in-memory) storage: the same files, rows and validation errors as on disk;
    a URI without spec.json is refused even with data.generate set (a mistyped bucket path must
    not become synthetic data)."""
    spec = tiny_spec()
    root = location(_bucket()).child("data")
    root.child("spec.json").write_text(spec.to_json())
    for split, rows in (("train", 30), ("valid", 7), ("test", 5)):
        _write_parquet(random_table(spec, rows, seed=rows), root.child(split, "part-0.parquet"))
    assert read_spec(str(root)) == spec
    assert split_files(str(root), "train") == [f"{root}/train/part-0.parquet"]
    assert validate_split(str(root), "valid", spec).rows == 7
    _write_parquet(random_table(spec, 4).drop_columns(["d1"]), root.child("test", "part-1.parquet"))
    with pytest.raises(Exception, match=rf"{root}/test/part-1.parquet: missing column 'd1'"):
        validate_split(str(root), "test", spec)

    typo = f"{_bucket()}/dtaa"
    with pytest.raises(ConfigError, match=rf"data.path '{typo}': no data set here.*never at a storage URI"):
        prepare_dataset(JobConfig(data=DataConfig(path=typo, generate="tiny")))
    assert not location(typo).exists()


def test_generated_data_set_at_a_uri_is_uploaded_marker_last_and_then_read(tmp_path):
    """`python -m ray_jobs.generate --out <uri>`'s path: the same files as a local generation,
    generator.json written after them; prepare_dataset then reads it at its URI."""
    from dataclasses import replace

    from ray_jobs.data.synthetic import GENERATOR_FILE, PRESETS, generate, is_complete

    preset = replace(PRESETS["tiny"], rows=600)
    uri = f"{_bucket()}/gen"
    assert generate(preset, uri) == str(location(uri)) and is_complete(preset, uri)
    local = generate(preset, tmp_path / "gen")
    names = sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file())
    place = location(uri)
    assert sorted(p.path[len(place.path) + 1:] for p in place.files(recursive=True)) == names
    assert place.child(GENERATOR_FILE).read_text() == (local / GENERATOR_FILE).read_text()
    dataset = prepare_dataset(JobConfig(data=DataConfig(path=uri, generate=None)))
    assert {s: i.rows for s, i in dataset.splits.items()} == {
        s: sum(pq.read_metadata(f).num_rows for f in (local / s).glob("*.parquet")) for s in ("train", "valid", "test")}


def test_export_to_a_uri_loads_back_and_a_run_on_object_storage_takes_no_lock():
    """An export staged and uploaded to (in-memory) storage scores like the eager model once
    downloaded by ExportedModel; a run directory there gets no flock (none exists on object
    stores) and its driver log is uploaded to <run>/logs/."""
    import numpy as np
    import torch

    from modules.model import SeesawModel
    from ray_jobs.core import console
    from ray_jobs.data.collate import Collator
    from ray_jobs.serving.export import save_export
    from ray_jobs.serving.predict import ExportedModel
    from ray_jobs.training.run_lock import UnlockedRun, hold_run

    spec = tiny_spec()
    torch.manual_seed(0)
    model = SeesawModel(spec, "sharedbottom").eval()
    uri = f"{_bucket()}/export"
    assert save_export(model, uri) == uri and location(uri).child("model.pt2").is_file()
    table = random_table(spec, 9)
    with torch.no_grad():
        eager = torch.sigmoid(model(Collator(spec, model.kjt_keys)(table))[1].logits).numpy()
    np.testing.assert_allclose(ExportedModel(uri).probabilities(table), eager, rtol=1e-5, atol=1e-7)

    run = location(_bucket()).child("runs", "r")
    assert isinstance(hold_run(run), UnlockedRun)
    log = local_mirror(run) / console.LOGS_DIR / console.DRIVER_LOG
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("driver says hi\n")
    console.publish_logs(run, console.DRIVER_LOG)
    assert run.child(console.LOGS_DIR, console.DRIVER_LOG).read_text() == "driver says hi\n"


def test_file_uris_end_to_end_train_evaluate_export_predict(ray_session, tiny_data, tmp_path):
    """data.path and runs_dir as file:// URIs (the storage code path Ray Train and Ray Data take
    for s3:// or gs://: storage_filesystem + stripped paths): the run's files land at the
    URI's location, evaluate reproduces metrics.json from the checkpoint the URI pointer names,
    and the program exported to a URI, run by the predict entry point over the test split's
    URI, gives the run's own test predictions."""
    import json

    import numpy as np
    import pandas as pd

    from ray_jobs.core.config import ModelConfig, TrainConfig, WorkersConfig
    from ray_jobs.export import main as export_main
    from ray_jobs.predict import main as predict_main
    from ray_jobs.training.job import train
    from ray_jobs.training.scoring import score_checkpoint

    config = JobConfig(name="uri", data=DataConfig(path=f"file://{tiny_data}", generate=None, batch_size=256),
                       model=ModelConfig(arch="sharedbottom"), train=TrainConfig(epochs=1, max_steps_per_epoch=6),
                       workers=WorkersConfig(num_workers=1), runs_dir=f"file://{tmp_path}/runs")
    run = train(config, run_name="uri")
    assert run == f"file://{tmp_path}/runs/uri"
    local = tmp_path / "runs" / "uri"
    for name in ("metrics.json", "job.yaml", "test_predictions.parquet", "logs/driver.log", "logs/worker-0.log"):
        assert (local / name).is_file(), name
    summary = json.loads((local / "metrics.json").read_text())["summary"]
    best = (local / "best_checkpoint").read_text().strip()
    assert best == summary["best_checkpoint"] and best.startswith(f"file://{local}/checkpoint_")
    assert (location(best).local / ".metadata").is_file()

    metrics, _ = score_checkpoint(run)
    for key in ("test_mean_auc", "test_mean_gauc", "test_mean_logloss"):
        np.testing.assert_allclose(metrics[key], summary[key], rtol=1e-6)

    export, scored = f"file://{tmp_path}/export", f"file://{tmp_path}/scored"
    assert export_main(["--checkpoint", run, "--out", export]) == 0
    assert (tmp_path / "export" / "model.pt2").is_file()
    assert predict_main(["--model", export, "--data", f"{config.data.path}/test", "--out", scored]) == 0
    got = pd.read_parquet(tmp_path / "scored").set_index("sample_id").sort_index()
    want = pd.read_parquet(local / "test_predictions.parquet").set_index("sample_id").sort_index()
    assert len(got) == len(want) > 0
    columns = [c for c in want.columns if c.startswith("pred_")]
    np.testing.assert_allclose(got[columns].to_numpy(), want[columns].to_numpy(), rtol=1e-5, atol=1e-7)
