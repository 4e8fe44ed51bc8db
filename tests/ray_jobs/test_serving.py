"""Export and batch prediction without a training run: exported programs equal eager models, raw
logs are encoded with the saved encoders, bad input fails like training data."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from modules.model import SeesawModel
from modules.spec import DatasetSpec
from ray_jobs.core.errors import DataError
from ray_jobs.data.collate import Collator
from ray_jobs.data.dataset import split_files
from ray_jobs.predict import main as predict_main
from ray_jobs.serving.export import export_run, save_export
from ray_jobs.serving.predict import ExportedModel, predict_files
from tests.factories import random_table, tiny_spec


@pytest.mark.parametrize("arch", ["pepnet", "smes"])
def test_exported_program_equals_eager_model_at_two_batch_sizes(arch, tmp_path):
    """A fresh model's program, saved and loaded back, gives the eager model's probabilities
    on batches of sizes it was not traced with (SMES: its grouped forward vs the exported
    masked reference)."""
    spec = tiny_spec()
    torch.manual_seed(0)
    model = SeesawModel(spec, arch).eval()
    exported = ExportedModel(save_export(model, tmp_path / "export"))
    collate = Collator(spec, model.kjt_keys)
    for rows in (1, 37):
        table = random_table(spec, rows, seed=rows)
        with torch.no_grad():
            eager = torch.sigmoid(model(collate(table))[1].logits).numpy()
        np.testing.assert_allclose(exported.probabilities(table), eager, rtol=1e-5, atol=1e-7)


def test_bad_input_to_predict_fails_like_training_data(tmp_path, capsys):
    """A missing column and an id outside its table: the training data checks' errors, naming
    file, column and value, before any Ray starts; the entry point exits 2 with one line."""
    spec = tiny_spec()
    torch.manual_seed(0)
    model_dir = save_export(SeesawModel(spec, "sharedbottom").eval(), tmp_path / "export")
    table = random_table(spec, 20).drop_columns(list(spec.tasks))  # no labels needed
    pq.write_table(table, tmp_path / "good.parquet")
    pq.write_table(table.drop_columns(["d1"]), tmp_path / "no_d1.parquet")
    ids = table.column("item_id").to_numpy().copy()
    ids[3] = 60
    pq.write_table(table.set_column(table.schema.get_field_index("item_id"), "item_id", [ids]),
                   tmp_path / "bad_id.parquet")
    with pytest.raises(DataError, match=r"no_d1.parquet: missing column 'd1'"):
        predict_files(model_dir, [str(tmp_path / "no_d1.parquet")], tmp_path / "out")
    with pytest.raises(DataError, match=r"bad_id.parquet: column 'item_id' has value 60 outside \[0, 59\]"):
        predict_files(model_dir, [str(tmp_path / "bad_id.parquet")], tmp_path / "out")
    code = predict_main(["--model", str(model_dir), "--data", str(tmp_path / "bad_id.parquet"), "--out", str(tmp_path / "o")])
    assert code == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(f"error: {tmp_path / 'bad_id.parquet'}: column 'item_id'")
    assert not (tmp_path / "out").exists()


def test_raw_log_is_encoded_with_the_saved_encoders(tmp_path):
    """A model on a prepared data set: its raw log, encoded with the exported encoders, scores
    exactly like the prepared Parquet rows (joined on sample_id, the row number in the log);
    a model without encoders refuses a raw log."""
    from tests.ray_jobs.test_prepare import _write_raw, _write_recipe
    from ray_jobs.data.prepare import prepare
    from ray_jobs.data.recipe import load_recipe
    from ray_jobs.serving.predict import input_files

    _write_raw(tmp_path)
    data = tmp_path / "prepared"
    prepare(load_recipe(_write_recipe(tmp_path)), data)
    spec = DatasetSpec.load(data)
    torch.manual_seed(0)
    model_dir = save_export(SeesawModel(spec, "sharedbottom").eval(), tmp_path / "export", vocab=data / "vocab")
    model = ExportedModel(model_dir)
    (encoded,) = input_files(model_dir, tmp_path / "log.tsv", tmp_path)
    from_raw = model.score(pq.read_table(encoded)).to_pandas().set_index("sample_id")
    prepared = pd.concat([model.score(pq.read_table(f)).to_pandas() for f in
                          (split_files(data, s)[0] for s in ("train", "valid", "test"))]).set_index("sample_id")
    assert len(from_raw) == len(prepared) == 22
    np.testing.assert_allclose(from_raw.sort_index().to_numpy(), prepared.sort_index().to_numpy(), rtol=1e-6)
    plain = save_export(SeesawModel(spec, "sharedbottom").eval(), tmp_path / "plain")
    with pytest.raises(DataError, match="holds no encoders"):
        input_files(plain, tmp_path / "log.tsv", tmp_path)


def test_export_of_a_two_rank_checkpoint_scores_like_the_sharded_model(tmp_path):
    """2 gloo ranks train table-wise shards and write one DCP checkpoint; the export (loaded
    unsharded, no process group) gives the probabilities evaluation's predict + gather gave
    on the sharded model (rtol 1e-5), in batches of 5 and of 64 rows."""
    from ray_jobs.core.config import JobConfig, ModelConfig, dump_config
    from modules.strict import to_dict
    from tests.distributed import run_distributed
    from tests.ray_jobs.export_body import TEST_ROWS, train_checkpoint_score

    spec = tiny_spec()
    run_dir = tmp_path / "run"
    checkpoint = run_dir / "checkpoint_000000"
    checkpoint.mkdir(parents=True)
    reference = run_distributed(train_checkpoint_score, 2, "pepnet", str(checkpoint), timeout=400)[0]
    (run_dir / "job.yaml").write_text(dump_config(JobConfig(model=ModelConfig(arch="pepnet"))))
    (run_dir / "metrics.json").write_text(json.dumps({"spec": to_dict(spec)}))
    (run_dir / "latest_checkpoint").write_text(f"{checkpoint}\n")
    model = ExportedModel(export_run(run_dir, tmp_path / "export"))
    table = pa.concat_tables([random_table(spec, TEST_ROWS, seed=500 + rank) for rank in range(2)])
    for batch in (5, 64):
        got = np.concatenate([model.probabilities(table.slice(i, batch)) for i in range(0, table.num_rows, batch)])
        np.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-7)
