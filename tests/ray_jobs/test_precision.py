"""train.precision: parsed and checked by the config, refused on CPU workers, wired to the tables."""

import pytest
import torch

from modules.model import SeesawModel, embedding_tables
from modules.strict import ConfigError
from ray_jobs.core.config import JobConfig, load_config, with_overrides
from tests.factories import tiny_spec
from torchrec.modules.embedding_configs import DataType


def test_mixed_precision_is_refused_on_cpu_workers(tmp_path):
    for precision in ("bf16", "fp16_tables", "bf16_fp16_tables"):
        with pytest.raises(ConfigError, match=rf"train.precision '{precision}' needs CUDA workers \(workers.use_gpu: true\)"):
            with_overrides(JobConfig(), {"train.precision": precision})
    path = tmp_path / "job.yaml"
    path.write_text("train:\n  precision: bf16\n")
    with pytest.raises(ConfigError, match="needs CUDA workers"):
        load_config(path)
    assert with_overrides(JobConfig(), {"train.precision": "fp32"}).train.precision == "fp32"


def test_precision_options_on_cuda_workers():
    with pytest.raises(ConfigError, match=r"'fp16' is not one of \['fp32', 'bf16', 'fp16_tables', 'bf16_fp16_tables'\]"):
        with_overrides(JobConfig(), {"workers.use_gpu": True, "train.precision": "fp16"})
    flags = {p: (t.dense_autocast, t.fp16_tables) for p in ("fp32", "bf16", "fp16_tables", "bf16_fp16_tables")
             for t in [with_overrides(JobConfig(), {"workers.use_gpu": True, "train.precision": p}).train]}
    assert flags == {"fp32": (False, False), "bf16": (True, False), "fp16_tables": (False, True),
                     "bf16_fp16_tables": (True, True)}


def test_fp16_tables_reach_torchrec_table_configs():
    """The planner and FBGEMM read the dtype from the table configs; the unsharded EBC holds it."""
    spec = tiny_spec()
    model = SeesawModel(spec, "sharedbottom", fp16_tables=True)
    assert {t.data_type for t in embedding_tables(spec, model.table_sets, model.table_data_type)} == {DataType.FP16}
    assert {p.dtype for p in model.sparse_arch.parameters()} == {torch.float16}
    assert {p.dtype for p in SeesawModel(spec, "sharedbottom").sparse_arch.parameters()} == {torch.float32}
