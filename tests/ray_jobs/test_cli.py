"""Entry-point plumbing shared by train, evaluate, compare and tune."""

import pytest

from modules.strict import ConfigError
from ray_jobs.cli import exit_code, override
from ray_jobs.data import DataError
from ray_jobs.config import JobConfig
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


def test_override_changes_only_what_is_given():
    base = JobConfig()
    assert override(base) == base
    changed = override(base, data="d", epochs=5, num_workers=3)
    assert (changed.data.path, changed.train.epochs, changed.workers.num_workers) == ("d", 5, 3)
    assert changed.model == base.model and changed.data.batch_size == base.data.batch_size
