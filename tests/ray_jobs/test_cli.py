"""Entry-point plumbing shared by every entry point: job flags, overrides, exit codes."""

import argparse
from pathlib import Path

import pytest

from modules.strict import ConfigError
from ray_jobs.core.cli import add_job_flags, exit_code, job_from_args
from ray_jobs.core.errors import DataError
from ray_jobs.core.config import JobConfig, ModelConfig, apply_overrides
from ray_jobs.core.paths import job_paths
from sharding.checkpoint import CheckpointError


@pytest.mark.parametrize("error", [ConfigError("bad key"), DataError("f.parquet: bad value"),
                                   CheckpointError("ckpt: corrupted")])
def test_user_errors_exit_2_with_one_line(error, capsys):
    def body():
        raise error

    assert exit_code(body) == 2
    assert capsys.readouterr().err == f"error: {error}\n"


def test_other_errors_are_not_swallowed_and_success_exits_0():
    assert exit_code(lambda: None) == 0
    with pytest.raises(ZeroDivisionError):
        exit_code(lambda: 1 / 0)


def _job(*argv: str, **flags) -> JobConfig:
    parser = argparse.ArgumentParser()
    add_job_flags(parser, **flags)
    return job_from_args(parser.parse_args(list(argv)))


def test_job_flags_change_only_what_is_given():
    base = JobConfig()
    assert _job() == job_paths(base)  # the same job, its paths made absolute (tests/ray_jobs/test_paths.py)
    changed = _job("--data", "d", "--epochs", "5", "--num-workers", "3")
    assert (changed.data.path, changed.train.epochs, changed.workers.num_workers) == (str(Path.cwd() / "d"), 5, 3)
    assert changed.model == base.model and changed.data.batch_size == base.data.batch_size
    assert changed.data.generate is None  # a --data path is never generated into
    assert base.data.generate is not None


def test_set_reaches_any_key_and_is_as_strict_as_yaml():
    config = _job("--set", "train.optim.dense_lr=0.01", "--set", "model.params={use_ppnet: false}")
    assert config.train.optim.dense_lr == 0.01 and config.model.params == {"use_ppnet": False}
    with pytest.raises(ConfigError, match="unknown key 'dense_lrr'"):
        _job("--set", "train.optim.dense_lrr=0.01")
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        _job("--set", "train.epochs")
    with pytest.raises(ConfigError, match="num_expert"):
        _job("--arch", "mmoe", "--set", "model.params={num_expert: 3}", arch=True)


def test_another_arch_resets_the_old_arch_params():
    base = JobConfig(model=ModelConfig("mmoe", {"num_experts": 8}))
    assert apply_overrides(base, {"model.arch": "sharedbottom"}).model == ModelConfig("sharedbottom")
    assert apply_overrides(base, {"model.arch": "mmoe"}).model == base.model
