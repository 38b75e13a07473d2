"""Randomized SVD benchmark: ours (subspace iteration, block Krylov, single pass) against
torch.svd_lowrank, scikit-learn and the full SVD.

    .venv/bin/python bench/rsvd.py             # the full run, ~15 min on one busy core
    .venv/bin/python bench/rsvd.py --quick     # 512x512, a few seconds: a smoke test
    .venv/bin/python bench/rsvd.py --repeats 9 --dtypes float32,float64

For each matrix (the trained model0 W when the cache has it; a synthetic 4096x4096 with
σ_j = 1/j), each k and q at p = 10: median wall time over --repeats runs with the methods
interleaved (the order rotates every run), and the spectral error ‖A − U_k S_k V_kᵀ‖₂ / σ_{k+1}
(median over the first --error-runs runs; 1 is the Eckart–Young optimum). Block Krylov's q is
its depth (the same 2q + 2 passes over A as subspace iteration at that q); single pass takes no
q or p (sketch sizes 2k + 1 and 4k + 3) and is measured again in every row. At equal error,
block Krylov at each q is compared with the least q at which torch.svd_lowrank does as well. The
full
torch.linalg.svd is timed --full-repeats times; its rank-k error is exactly σ_{k+1}, so the
measured value checks the error estimator (lowrank.spectral_error estimates above 2000x2000).
Writes bench/results/rsvd.json and bench/results/rsvd.md (--quick writes only with --out).
"""

import argparse
import json
import platform
import statistics
import time
from functools import partial
from pathlib import Path

import sklearn
import torch
from sklearn.utils.extmath import randomized_svd as sklearn_randomized_svd
from threadpoolctl import threadpool_limits

from lowrank.randomized import (
    block_krylov_svd,
    randomized_svd,
    single_pass_svd,
    spectral_error,
    with_spectrum,
)

P = 10  # oversampling p, as in the issue
METHODS = ("ours", "torch.svd_lowrank", "sklearn", "block Krylov", "single pass")


def harmonic_matrix(n, seed=0):
    """n×n with σ_j = 1/j and Haar-random singular vectors (QR of Gaussians), built in float64."""
    σ = 1 / torch.arange(1, n + 1, dtype=torch.float64)
    return with_spectrum(σ, n, n, generator=torch.Generator().manual_seed(seed)), σ


def model0_matrix():
    """The trained 1000×1000 W of model0 and its singular values, or None when not cached."""
    try:
        from lowrank.experiments import is_cached, load_or_train
    except ImportError:  # the training code may not exist yet
        return None
    if not is_cached("model0"):
        return None
    W = load_or_train("model0")[0].W.detach().to(torch.float64)
    return W, torch.linalg.svdvals(W)


def run_method(method, A, k, q, seed):
    """Rank-k factors (U_k S_k, V_kᵀ) of A by `method`, drawing its randomness from `seed`."""
    g = torch.Generator().manual_seed(seed)
    if method in ("ours", "block Krylov", "single pass"):
        if method == "ours":
            U, S, Vh = randomized_svd(A, k, P, q, generator=g)
        elif method == "block Krylov":
            U, S, Vh = block_krylov_svd(A, k, P, q, generator=g)
        else:
            U, S, Vh = single_pass_svd(A, k, generator=g)
        return U * S, Vh
    if method == "torch.svd_lowrank":  # its q is our k + p and its niter our q
        torch.manual_seed(seed)
        U, S, V = torch.svd_lowrank(A, q=k + P, niter=q)
        return U[:, :k] * S[:k], V[:, :k].mT
    U, S, Vh = sklearn_randomized_svd(A.numpy(), k, n_oversamples=P, n_iter=q, random_state=seed)
    return torch.from_numpy(U * S), torch.from_numpy(Vh)


def timed(f):
    """(wall s, CPU s of this process, f()): CPU time tells whether others took our cores."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = f()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def bench_matrix(name, A, σ, ks, qs, args):
    print(f"\n{name}: {tuple(A.shape)} {str(A.dtype).removeprefix('torch.')}", flush=True)
    full = [
        timed(lambda: torch.linalg.svd(A, full_matrices=False)) for _ in range(args.full_repeats)
    ]
    full_median = statistics.median(t for t, _, _ in full)
    U, S, Vh = full[0][2]
    full_error = {k: spectral_error(A, U[:, :k] * S[:k], Vh[:k]) / σ[k].item() for k in ks}
    print(
        f"  full SVD {full_median:.3f} s (median of {args.full_repeats}); "
        f"rank-k error / σ_k+1: {', '.join(f'{v:.4f}' for v in full_error.values())}",
        flush=True,
    )
    for method in METHODS:  # warm up: first calls pay for thread pools and allocations
        run_method(method, A, ks[0], 0, seed=0)
    rows = []
    for k in ks:
        for q in qs:
            seconds = {m: [] for m in METHODS}
            cpu_seconds = {m: [] for m in METHODS}
            errors = {m: [] for m in METHODS}
            for run in range(args.repeats):
                turn = run % len(METHODS)
                order = METHODS[turn:] + METHODS[:turn]
                for method in order:
                    t, cpu, (Uk, Vk) = timed(partial(run_method, method, A, k, q, seed=run))
                    seconds[method].append(t)
                    cpu_seconds[method].append(cpu)
                    if run < args.error_runs:
                        errors[method].append(spectral_error(A, Uk.to(A), Vk.to(A)) / σ[k].item())
            row = {
                "k": k,
                "q": q,
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "median_s": {m: statistics.median(v) for m, v in seconds.items()},
                "error": {m: statistics.median(v) for m, v in errors.items()},
            }
            torch_s = row["median_s"]["torch.svd_lowrank"]
            row["time_vs_torch"] = {m: v / torch_s for m, v in row["median_s"].items()}
            row["full_vs_torch"] = full_median / torch_s
            rows.append(row)
            print(
                f"  k={k:3d} q={q}  "
                + "  ".join(
                    f"{m} {row['median_s'][m]:.4f} s ({row['time_vs_torch'][m]:.2f}x)"
                    f" err {row['error'][m]:.3f}"
                    for m in METHODS
                ),
                flush=True,
            )
    return {
        "name": name,
        "shape": list(A.shape),
        "dtype": str(A.dtype).removeprefix("torch."),
        "full_svd_s": [t for t, _, _ in full],
        "full_svd_cpu_s": [c for _, c, _ in full],
        "full_svd_median_s": full_median,
        "full_svd_error": full_error,
        "rows": rows,
    }


def targets(results, big):
    """The issue's targets, checked on the measured rows."""
    out = {}
    rows = [(r, row) for r in results for row in r["rows"]]
    for other in ("torch.svd_lowrank", "sklearn"):
        time_ratio = [row["median_s"]["ours"] / row["median_s"][other] for _, row in rows]
        error_ratio = [row["error"]["ours"] / row["error"][other] for _, row in rows]
        out[f"time ours/{other} <= 1"] = {
            "met": sum(t <= 1 for t in time_ratio),
            "of": len(rows),
            "worst": max(time_ratio),
        }
        out[f"error ours/{other} <= 1.01"] = {
            "met": sum(e <= 1.01 for e in error_ratio),
            "of": len(rows),
            "worst": max(error_ratio),
        }
    for r in results:
        if r["shape"] == [big, big]:
            for row in r["rows"]:
                if row["k"] == 50:
                    speedup = r["full_svd_median_s"] / row["median_s"]["ours"]
                    out[f"{r['dtype']} full/ours >= 100 at k=50 q={row['q']}"] = {
                        "value": speedup,
                        "met": speedup >= 100,
                    }
                if row["k"] == 100 and row["q"] == 2 and r["dtype"] == "float32":
                    out["float32 error/σ_k+1 <= 1.1 at k=100 q=2"] = {
                        "value": row["error"]["ours"],
                        "met": row["error"]["ours"] <= 1.1,
                        "torch.svd_lowrank": row["error"]["torch.svd_lowrank"],
                        "sklearn": row["error"]["sklearn"],
                    }
    return out


def equal_error(results):
    """Block Krylov at each (k, q) against torch.svd_lowrank at the least q that reaches the
    same error (within 1%), on the same matrix and dtype: the time ratio, or None when no q
    measured reaches it."""
    out = []
    for r in results:
        for row in r["rows"]:
            target = row["error"]["block Krylov"]
            same_k = [x for x in r["rows"] if x["k"] == row["k"]]
            reach = [x for x in same_k if x["error"]["torch.svd_lowrank"] <= 1.01 * target]
            match = min(reach, key=lambda x: x["q"]) if reach else None
            krylov_s = row["median_s"]["block Krylov"]
            out.append(
                {
                    "matrix": r["name"],
                    "dtype": r["dtype"],
                    "k": row["k"],
                    "q": row["q"],
                    "error": target,
                    "torch_q": None if match is None else match["q"],
                    "torch_error": None if match is None else match["error"]["torch.svd_lowrank"],
                    "krylov_s": krylov_s,
                    "torch_s": None if match is None else match["median_s"]["torch.svd_lowrank"],
                }
            )
    return out


def markdown(results, checks, meta, matches=()):
    lines = [
        f"Median wall time over {meta['repeats']} interleaved runs, p = {P}, "
        f"threads = {meta['threads']} ({meta['cpu']}; torch {meta['torch']}, "
        f"scikit-learn {meta['sklearn']}). Times in s, × is the ratio to torch.svd_lowrank "
        f"in the same run; error is ‖A − A_k‖₂ / σ_k+1 (1 is optimal), median of the first "
        f"{meta['error_runs']} runs. Wall over CPU time, median over all runs: "
        f"{meta['wall_over_cpu']:.2f} (1/threads when the cores were all ours).",
        "",
    ]
    for r in results:
        shape = "×".join(map(str, r["shape"]))
        lines += [
            f"**{r['name']}**, {shape}, {r['dtype']}: full `torch.linalg.svd` "
            f"{r['full_svd_median_s']:.2f} s (median of {len(r['full_svd_s'])}); its rank-k "
            f"error / σ_k+1 measures {min(r['full_svd_error'].values()):.4f} to "
            f"{max(r['full_svd_error'].values()):.4f}.",
            "",
            "| k | q | ours | torch.svd_lowrank | scikit-learn | block Krylov | single pass "
            "| full SVD | error ours | error torch | error sklearn | error Krylov "
            "| error single pass |",
            "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for row in r["rows"]:
            s, x, e = row["median_s"], row["time_vs_torch"], row["error"]
            times = " | ".join(f"{s[m]:.4f} ({x[m]:.2f}×)" for m in METHODS)
            errors = " | ".join(f"{e[m]:.3f}" for m in METHODS)
            lines.append(
                f"| {row['k']} | {row['q']} | {times} "
                f"| {r['full_svd_median_s']:.2f} ({row['full_vs_torch']:.0f}×) | {errors} |"
            )
        lines.append("")
    lines += [
        "At equal error: block Krylov at (k, q) against torch.svd_lowrank at the least q whose "
        "error is within 1% of it (times in s).",
        "",
        "| matrix | dtype | k | q | error Krylov | torch q | error torch | Krylov s | torch s "
        "| torch / Krylov |",
        "|:--|:--|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for c in matches:
        if c["torch_q"] is None:
            torch_part = f"none | – | {c['krylov_s']:.4f} | – | – "
        else:
            torch_part = (
                f"{c['torch_q']} | {c['torch_error']:.3f} | {c['krylov_s']:.4f} "
                f"| {c['torch_s']:.4f} | {c['torch_s'] / c['krylov_s']:.2f}× "
            )
        lines.append(
            f"| {c['matrix']} | {c['dtype']} | {c['k']} | {c['q']} | {c['error']:.3f} "
            f"| {torch_part}|"
        )
    lines.append("")
    lines += ["Targets:", ""]
    for name, c in checks.items():
        detail = ", ".join(
            f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in c.items()
        )
        lines.append(f"- {name}: {detail}")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="512x512, k in {10, 20}, q in {0, 2}")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per method")
    parser.add_argument("--full-repeats", type=int, default=3, help="timed full SVDs (≈20 s each)")
    parser.add_argument("--error-runs", type=int, default=3, help="runs whose error is measured")
    parser.add_argument("--dtypes", default="float32", help="comma-separated: float32,float64")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads for torch and numpy's "
        "BLAS alike; 1 (the default, used for bench/results) keeps times steady on "
        "a shared machine, where idle threads of a pool wait for busy cores",
    )
    parser.add_argument("--out", type=Path, help="results folder (default bench/results)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    size, ks, qs = (512, [10, 20], [0, 2]) if args.quick else (4096, [10, 20, 50], [0, 1, 2, 3])
    if args.quick:
        args.repeats, args.full_repeats, args.error_runs = min(args.repeats, 2), 1, 1
    args.error_runs = min(args.error_runs, args.repeats)
    out = args.out or (None if args.quick else Path(__file__).parent / "results")

    start = time.perf_counter()
    matrices = []
    if not args.quick and (w := model0_matrix()) is not None:
        matrices.append(("model0 W", *w))
    matrices.append(("σ_j = 1/j", *harmonic_matrix(size)))
    print(f"built matrices in {time.perf_counter() - start:.1f} s", flush=True)
    results = []
    for name, A, σ in matrices:
        for dtype in args.dtypes.split(","):
            results.append(bench_matrix(name, A.to(getattr(torch, dtype)), σ, ks, qs, args))

    meta = {
        "torch": torch.__version__,
        "sklearn": sklearn.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "repeats": args.repeats,
        "full_repeats": args.full_repeats,
        "error_runs": args.error_runs,
        "p": P,
        "quick": args.quick,
        "total_s": time.perf_counter() - start,
        "wall_over_cpu": statistics.median(
            w / c
            for r in results
            for row in r["rows"]
            for m in METHODS
            for w, c in zip(row["seconds"][m], row["cpu_seconds"][m])
        ),
    }
    checks = targets(results, size)
    matches = equal_error(results)
    table = markdown(results, checks, meta, matches)
    print("\n" + table)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "rsvd.json").write_text(
            json.dumps(
                {"meta": meta, "targets": checks, "equal_error": matches, "results": results},
                indent=1,
                default=float,
            )
        )
        (out / "rsvd.md").write_text(table)
        print(f"wrote {out / 'rsvd.json'} and {out / 'rsvd.md'}")


if __name__ == "__main__":
    main()
