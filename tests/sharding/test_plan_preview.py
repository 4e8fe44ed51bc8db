"""Plan preview: plans for clusters we don't have, on the meta device, with exact memory sums."""

import pytest
import yaml

from modules.spec import DatasetSpec, SparseFeature
from sharding.plan import main
from sharding.preview import PlanDoesNotFit, preview_plan

BIG_ROWS, BIG_DIM = 50_000_000, 64


@pytest.fixture(scope="module")
def spec() -> DatasetSpec:
    """Two 5e7 x 64 tables (12 GiB each with Adagrad state) and three small ones."""
    return DatasetSpec(
        sparse_features=(
            SparseFeature("user_id", BIG_ROWS, BIG_DIM, "user"),
            SparseFeature("item_id", BIG_ROWS, BIG_DIM, "item"),
            SparseFeature("author_id", 1_000, 16, "author"),
            SparseFeature("hour", 24, 8, "context"),
            SparseFeature("domain", 3, 8, "domain"),
        ),
        dense_features=("d0",),
        tasks=("click", "like"),
        domains=("a", "b", "c"),
    )


def expected_bytes(spec: DatasetSpec) -> tuple[int, int]:
    """(fp32 weights, one fp32 Adagrad accumulator per row) of every table, from the spec alone."""
    weights = sum(f.cardinality * f.embedding_dim * 4 for f in spec.sparse_features)
    optimizer = sum(f.cardinality * 4 for f in spec.sparse_features)
    return weights, optimizer


def test_cuda_big_tables_are_row_wise_across_all_ranks(spec):
    preview = preview_plan(spec, "sharedbottom", {}, 64, "cuda", batch_size=512, local_world_size=8, hbm_gb=80)
    big = {t.name: t for t in preview.tables if t.rows == BIG_ROWS}
    assert set(big) == {"t_user_id", "t_item_id"}
    for table in big.values():
        assert table.sharding_type == "row_wise"
        assert sorted({s.rank for s in table.shards}) == list(range(64))
        assert sum(s.rows for s in table.shards) == BIG_ROWS
        assert all(s.cols == BIG_DIM for s in table.shards)


def test_cpu_plan_is_never_row_wise(spec):
    preview = preview_plan(spec, "sharedbottom", {}, 4, "cpu", batch_size=512)
    kinds = {t.sharding_type for t in preview.tables}
    assert kinds <= {"table_wise", "column_wise"}, kinds
    for table in preview.tables:  # every shard holds all rows of its columns
        assert all(s.rows == table.rows for s in table.shards)


@pytest.mark.parametrize("device,world_size", [("cuda", 64), ("cpu", 4)])
def test_per_rank_memory_adds_up_to_all_tables(spec, device, world_size):
    preview = preview_plan(spec, "sharedbottom", {}, world_size, device, batch_size=512, hbm_gb=80)
    ranks = preview.rank_memory()
    weights, optimizer = expected_bytes(spec)
    assert len(ranks) == world_size
    assert sum(r.weight_bytes for r in ranks) == weights
    assert sum(r.optimizer_bytes for r in ranks) == optimizer
    assert preview.total_bytes == weights + optimizer
    if device == "cuda":  # row-wise spreads the 24 GiB evenly: no rank holds much more than 1/64
        assert max(r.total_bytes for r in ranks) < 1.01 * (weights + optimizer) / world_size


def test_too_little_hbm_fails_naming_the_tables(spec):
    with pytest.raises(PlanDoesNotFit) as info:
        preview_plan(spec, "sharedbottom", {}, 8, "cuda", batch_size=512, hbm_gb=1)
    message = str(info.value)
    assert "8 x 1.00 GiB HBM" in message
    assert "t_user_id: 50,000,000 x 64 = 12.11 GiB" in message
    assert "insufficient storage" in message


def _write_job(tmp_path, spec: DatasetSpec):
    data = tmp_path / "data"
    data.mkdir()
    spec.save(data)
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump({"model": {"arch": "sharedbottom"}, "data": {"path": str(data)}}))
    return config


def test_cli_prints_tables_and_rank_memory(tmp_path, spec, capsys):
    config = _write_job(tmp_path, spec)
    rc = main(["--config", str(config), "--world-size", "16", "--local-world-size", "8",
               "--device", "cuda", "--hbm-gb", "80"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "16 cuda ranks, 80.0 GiB HBM each" in out
    user_line = next(line for line in out.splitlines() if line.startswith("t_user_id "))
    assert user_line.split()[1:4] == ["row_wise", "fused", "0-15"]
    assert "50,000,000 x 64" in user_line
    rank_lines = [line for line in out.split("embedding memory per rank")[1].splitlines()
                  if line.split() and line.split()[0].isdigit()]
    assert [line.split()[0] for line in rank_lines] == [str(r) for r in range(16)]


def test_cli_fails_clearly_when_it_does_not_fit(tmp_path, spec, capsys):
    rc = main(["--config", str(_write_job(tmp_path, spec)), "--world-size", "8", "--hbm-gb", "1"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "do not fit" in err and "t_item_id: 50,000,000 x 64" in err


def test_cli_missing_spec_says_where_it_looked(tmp_path, capsys):
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump({"model": {"arch": "sharedbottom"}, "data": {"path": str(tmp_path / "none")}}))
    rc = main(["--config", str(config), "--world-size", "8"])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"no data set spec at {tmp_path / 'none' / 'spec.json'}" in err and "--spec" in err


def _plan_under_hash_seed(spec_file, seed: int, *args: str) -> str:
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "sharding.plan", "--spec", str(spec_file), *args],
                          capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout


@pytest.mark.parametrize("world_size", ["1", "4"])
def test_the_plan_does_not_change_with_the_string_hash_seed(spec, tmp_path, world_size):
    """TorchRec 1.8 orders its sharding options through a set, so between options it estimates
    equal it picked by hash order (`sharding.planner.OrderedEnumerator`). Before the fix, these
    tables on 1 and on 4 CPU ranks got one plan under PYTHONHASHSEED=0 and another under 1
    (KuaiRand's on 16 GPUs too)."""
    spec_file = spec.save(tmp_path)
    plans = [_plan_under_hash_seed(spec_file, seed, "--world-size", world_size, "--device", "cpu") for seed in (0, 1)]
    assert plans[0] == plans[1], plans
