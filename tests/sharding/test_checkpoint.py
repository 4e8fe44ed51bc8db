"""Sharded checkpoints: round trip, and clear refusals of corrupted or foreign checkpoints."""

import pytest
import torch

from modules.model import SeesawModel
from ray_jobs.data.collate import Collator
from sharding.checkpoint import CheckpointError, load_sharded, save_sharded
from tests.factories import random_table, tiny_spec


def _model(arch="sharedbottom", seed=0):
    torch.manual_seed(seed)
    return SeesawModel(tiny_spec(), arch)


def test_round_trip_restores_weights_and_progress(tmp_path):
    saved = _model(seed=0)
    save_sharded(tmp_path / "ckpt", saved, progress={"epoch": 3, "step": 7})
    fresh = _model(seed=1)
    batch = Collator(tiny_spec(), saved.kjt_keys)(random_table(tiny_spec(), 8))
    assert not torch.allclose(fresh.predict(batch).logits, saved.predict(batch).logits)
    progress = load_sharded(tmp_path / "ckpt", fresh)
    assert progress == {"epoch": 3, "step": 7}
    torch.testing.assert_close(fresh.predict(batch).logits, saved.predict(batch).logits)


def test_corrupted_file_is_refused_before_loading(tmp_path):
    save_sharded(tmp_path / "ckpt", _model())
    shard = next((tmp_path / "ckpt").glob("*.distcp"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its manifest hash"):
        load_sharded(tmp_path / "ckpt", _model())


def test_truncated_and_incomplete_checkpoints_are_refused(tmp_path):
    save_sharded(tmp_path / "ckpt", _model())
    shard = next((tmp_path / "ckpt").glob("*.distcp"))
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_sharded(tmp_path / "ckpt", _model())
    (tmp_path / "ckpt" / ".metadata").unlink()
    with pytest.raises(CheckpointError, match="not a complete Seesaw checkpoint"):
        load_sharded(tmp_path / "ckpt", _model())


def test_checkpoint_of_another_model_is_refused(tmp_path):
    save_sharded(tmp_path / "ckpt", _model("sharedbottom"))
    with pytest.raises(CheckpointError, match="does not match this model"):
        load_sharded(tmp_path / "ckpt", _model("mmoe"))
