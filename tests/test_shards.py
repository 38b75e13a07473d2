"""Sharded training: N shares of stage 1 that partition it, of about equal cost, with each
fine-tuning run beside the model it starts from; `train --shard I/N --dry-run` trains nothing."""

import pytest

from lowrank import experiments, shards
from lowrank.cli import main


@pytest.fixture
def full_mode(monkeypatch):
    monkeypatch.setenv("LOWRANK_QUICK", "0")

    def untrained(name, seed, train=True):  # the plan must not depend on what is trained
        raise AssertionError(f"stage 1 read the cache for {name} seed {seed}")

    monkeypatch.setattr(experiments, "_history", untrained)


def share_costs(jobs, n):
    return [sum(shards.cost(job) for job in share) for share in shards.split(jobs, n)]


@pytest.mark.parametrize("n", range(1, 13))
def test_shares_partition_stage1_and_are_balanced(full_mode, n):
    jobs = shards.stage1()
    split = shards.split(jobs, n)
    assert len(split) == n
    flat = [job for share in split for job in share]
    assert sorted(flat) == sorted(jobs) and len(set(flat)) == len(jobs)  # disjoint, complete
    assert split == shards.split(list(jobs), n)  # deterministic
    costs = share_costs(jobs, n)
    mean = sum(costs) / n
    largest_group = max(sum(map(shards.cost, g)) for g in shards.groups(jobs))
    if largest_group <= 1.25 * mean:  # achievable
        assert max(costs) <= 1.25 * mean, (n, max(costs) / mean)


def test_the_publish_matrix_of_4_shares_is_within_1_percent(full_mode):
    costs = share_costs(shards.stage1(), 4)  # README, Publishing: the workflow's 4 shards
    assert max(costs) / (sum(costs) / 4) < 1.01


def test_stage1_is_every_seed_but_a_sweeps_extra_ones(full_mode):
    jobs = shards.stage1()
    for name in experiments.EXPERIMENTS:
        seeds = [s for job, s in jobs if job == name]
        if experiments._sweep_of(name):
            assert seeds == [experiments.TUNING_SEED], name
        else:
            assert seeds == experiments.static_seeds(name), name
            assert len(seeds) >= (6 if name not in experiments.DESCRIPTIVE else 2), name
    assert (
        len(jobs)
        == len(set(jobs))
        == sum(len(experiments.static_seeds(name)) for name in experiments.EXPERIMENTS)
    )


def test_fine_tuning_is_in_the_share_of_the_model_it_starts_from(full_mode):
    for n in (3, 7, 12):
        for share in shards.split(shards.stage1(), n):
            for name, seed in share:
                if experiments.config_for(name, seed).start is not None:
                    assert ("model0", seed) in share, (name, seed, n)


def test_shard_validation():
    assert shards.parse("2/4") == (2, 4) and shards.parse("1/1") == (1, 1)
    for bad in ("0/4", "5/4", "2", "2/", "/4", "a/b", "-1/4", "2/4/1", "²/4", ""):
        with pytest.raises(ValueError, match=r"^--shard must be I/N with integers 1 <= I <= N"):
            shards.parse(bad)


def test_bad_shard_is_one_line_naming_the_argument(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--shard", "5/4"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("error: --shard must be I/N with integers 1 <= I <= N, got '5/4'")


def test_dry_run_prints_each_share_and_trains_nothing(quick_cache, capsys, monkeypatch):
    monkeypatch.setattr(experiments, "QUICK_SEEDS", 2)
    trained = []
    monkeypatch.setattr(experiments, "_train_entry", lambda *a, **k: trained.append(a))
    printed = []
    for i in (1, 2, 3):
        assert main(["train", "--shard", f"{i}/3", "--dry-run"]) == 0
        printed.append(capsys.readouterr().out.splitlines())
    expected = [f"{name} seed {seed}" for name, seed in shards.stage1()]
    flat = [line for lines in printed for line in lines]
    assert sorted(flat) == sorted(expected) and len(flat) == len(set(flat))
    assert main(["train", "model0", "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines() == ["model0 seed 0", "model0 seed 1"]
    assert trained == [] and not quick_cache.exists()  # no cache folder, no file
