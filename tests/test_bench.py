"""Smoke tests: the benchmark scripts run and write what the post and the README quote.

The figures themselves are checked by running the benchmarks (make bench-rsvd, make bench-train),
not here: timings are not deterministic.
"""

import json
import subprocess
import sys
from pathlib import Path

from lowrank import MnistFCNet
from lowrank.model import step_flops

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_rsvd_benchmark_quick_run_writes_json_and_table(tmp_path):
    subprocess.run(
        [sys.executable, str(BENCH / "rsvd.py"), "--quick", "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    results = json.loads((tmp_path / "rsvd.json").read_text())
    assert results  # at least one matrix measured
    table = (tmp_path / "rsvd.md").read_text()
    assert "torch.svd_lowrank" in table and "| k | q |" in table
    assert "block Krylov" in table and "single pass" in table and "At equal error" in table


def test_train_speed_benchmark_quick_run_writes_json(tmp_path):
    subprocess.run(
        [
            sys.executable,
            str(BENCH / "train_speed.py"),
            "--quick",
            "--threads",
            "1",
            "--out",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    results = json.loads((tmp_path / "train_speed.json").read_text())
    assert results["quick"] is True
    assert {"ours", "plain", "example"} <= set(results["epochs"])
    assert (
        set(results["profile"]) == {"plain", "ours"} and len(results["profile"]["ours"]["top"]) == 5
    )
    assert results["flop_per_image"] == step_flops(MnistFCNet())  # read from the network
    assert 0 < results["ratios"]["fraction_of_matmul_bound"] <= 1
    assert "| plain |" in (tmp_path / "train_speed.md").read_text()
