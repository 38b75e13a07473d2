"""Properties of lowrank.randomized from Halko, Martinsson & Tropp (2011), with torch.linalg as
the oracle.

.venv/bin/python -m pytest tests/test_randomized.py -q
"""

import math

import pytest
import torch

from lowrank.randomized import (
    Sketch,
    _spectral_norm_estimate,
    adaptive_range_finder,
    block_krylov_svd,
    compression_ratio,
    estimate_error,
    flip_signs,
    frobenius_error,
    hmt_expected_error,
    least_tolerance,
    randomized_low_rank,
    randomized_svd,
    range_finder,
    single_pass_svd,
    spectral_error,
    srft_range_finder,
    truncated_svd,
)
from lowrank.randomized import (
    with_spectrum as package_with_spectrum,
)

M, N = 200, 150  # small enough for exact norms in milliseconds


def gen(seed):
    return torch.Generator().manual_seed(seed)


def with_spectrum(σ, m=M, n=N, seed=0, dtype=torch.float64):
    """X diag(σ) Yᵀ with random orthonormal X (m×r), Y (n×r): a matrix whose singular values
    are σ."""
    g = gen(seed)
    X = torch.linalg.qr(torch.randn(m, len(σ), generator=g, dtype=torch.float64)).Q
    Y = torch.linalg.qr(torch.randn(n, len(σ), generator=g, dtype=torch.float64)).Q
    return ((X * σ) @ Y.T).to(dtype)


def harmonic(n=N):  # σ_j = 1/j: slow decay, the hard case
    return 1 / torch.arange(1, n + 1, dtype=torch.float64)


def geometric(n=N, ratio=0.5):  # σ_j = ratio^(j-1): fast decay
    return ratio ** torch.arange(n, dtype=torch.float64)


def projection_error(A, Q):
    """‖A − QQᵀA‖₂, exactly."""
    return torch.linalg.matrix_norm(A - Q @ (Q.mT @ A), ord=2).item()


def rank_k(k=10, seed=1):
    g = gen(seed)
    return torch.randn(M, k, generator=g, dtype=torch.float64) @ torch.randn(
        k, N, generator=g, dtype=torch.float64
    )


FINDERS = {  # name -> Q from (A, size, generator)
    "gaussian": lambda A, size, g: range_finder(A, size, generator=g),
    "subspace iteration q=1": lambda A, size, g: range_finder(A, size, power_iters=1, generator=g),
    "subspace iteration q=3": lambda A, size, g: range_finder(A, size, power_iters=3, generator=g),
    "srft": lambda A, size, g: srft_range_finder(A, size, generator=g),
}


# -- stage A: range finders ------------------------------------------------------------------


@pytest.mark.parametrize("size", [10, 15])
@pytest.mark.parametrize("finder", FINDERS.values(), ids=FINDERS.keys())
def test_range_finder_recovers_rank_k_matrix_exactly(finder, size):
    A = rank_k(k=10)
    Q = finder(A, size, gen(0))
    assert Q.shape == (M, size)
    assert projection_error(A, Q) / torch.linalg.matrix_norm(A, ord=2) < 1e-10


def test_adaptive_range_finder_finds_the_rank_of_a_rank_k_matrix():
    A = rank_k(k=10)
    Q = adaptive_range_finder(A, tol=1e-8, generator=gen(0))
    assert Q.shape == (M, 10)
    assert projection_error(A, Q) / torch.linalg.matrix_norm(A, ord=2) < 1e-10


@pytest.mark.parametrize("finder", FINDERS.values(), ids=FINDERS.keys())
def test_range_finder_returns_orthonormal_columns(finder):
    Q = finder(with_spectrum(harmonic()), 40, gen(0))
    assert torch.linalg.matrix_norm(Q.mT @ Q - torch.eye(40, dtype=Q.dtype)) < 1e-10


def test_adaptive_range_finder_returns_orthonormal_columns():
    Q = adaptive_range_finder(with_spectrum(geometric(ratio=0.8)), tol=1e-6, generator=gen(0))
    I = torch.eye(Q.shape[1], dtype=Q.dtype)
    assert torch.linalg.matrix_norm(Q.mT @ Q - I) < 1e-10


@pytest.mark.parametrize("q", [0, 1])
def test_mean_error_over_50_trials_is_within_the_hmt_bound(q):
    σ, k, p = harmonic(), 10, 5
    A = with_spectrum(σ)
    errors = [projection_error(A, range_finder(A, k + p, q, generator=gen(t))) for t in range(50)]
    assert sum(errors) / len(errors) <= hmt_expected_error(σ, k, p, q)


def test_power_iterations_reduce_the_error_towards_the_optimum():
    σ, k = harmonic(), 20
    A = with_spectrum(σ)
    errors = [projection_error(A, range_finder(A, k, q, generator=gen(0))) for q in (0, 1, 3)]
    assert errors[0] > errors[1] > errors[2] >= σ[k].item() * (1 - 1e-12)  # Eckart–Young below


def test_subspace_iteration_is_accurate_in_float32():
    # σ_41 = 1/41 lies below ε^(1/5) ≈ 0.04 of ‖A‖ = 1: forming (AAᵀ)²AΩ before orthonormalising
    # (Algorithm 4.3) would lose it in float32; Algorithm 4.4 must come close to the optimum
    σ, k = harmonic(), 40
    A = with_spectrum(σ, dtype=torch.float32)
    U, V = randomized_low_rank(A, k, oversample=10, power_iters=2, generator=gen(0))
    assert spectral_error(A, U, V) <= 1.1 * σ[k].item()


@pytest.mark.parametrize("tol", [1e-2, 1e-3, 1e-6])
def test_adaptive_range_finder_meets_tol_with_close_to_the_numerical_rank(tol):
    σ, block = geometric(ratio=0.8), 10
    A = with_spectrum(σ)
    Q = adaptive_range_finder(A, tol, block=block, generator=gen(0))
    assert projection_error(A, Q) <= tol
    # Eckart–Young: no Q with fewer columns than σ_j > tol has error ≤ tol. And it does not waste
    # many: it stops once samples fall below tol / (10√(2/π)), plus about `block` columns of
    # oversampling that any Gaussian range finder needs (the p of Theorem 10.6).
    threshold = tol / (10 * math.sqrt(2 / math.pi))
    assert int((σ > tol).sum()) <= Q.shape[1] <= int((σ > threshold).sum()) + 2 * block


def halving(n=N):  # σ_j = 2^-j: float32 resolves only the first ~24
    return 2.0 ** -torch.arange(1, n + 1, dtype=torch.float64)


def test_adaptive_range_finder_certifies_the_least_tolerance_it_accepts():
    A = with_spectrum(halving(), dtype=torch.float32)  # the 200×150 float32 case
    least = least_tolerance(A)
    assert 1e-6 < least < 1e-4  # 1e-6 is below it: 150 columns and error 0.055 before
    for seed in range(3):
        Q = adaptive_range_finder(A, least, generator=gen(seed))
        assert Q.shape[1] < 40  # stopped on its own, far below min(m, n) = 150
        assert projection_error(A.double(), Q.double()) <= least
        I = torch.eye(Q.shape[1])
        assert torch.linalg.matrix_norm(Q.mT @ Q - I, ord=2) < 1e-5


@pytest.mark.parametrize("tol", [1e-6, "just below"])
def test_adaptive_range_finder_rejects_a_tolerance_below_machine_precision(tol):
    A = with_spectrum(halving(), dtype=torch.float32)
    least = least_tolerance(A)
    tol = math.nextafter(least, 0) if tol == "just below" else tol
    with pytest.raises(ValueError, match=rf"^tol must be >= {least:.3g} for this float32 A"):
        adaptive_range_finder(A, tol, generator=gen(0))
    # float64 resolves 2^-j far below 1e-6: the same tolerance is accepted and met there
    A64 = with_spectrum(halving())
    assert least_tolerance(A64) < 1e-12
    assert projection_error(A64, adaptive_range_finder(A64, 1e-6, generator=gen(0))) <= 1e-6


def test_truncated_svd_refuses_a_largest_singular_value_beyond_the_dtype():
    W = torch.full((4, 3), 3e38)  # σ₁ = 3e38·√12 > float32's 3.4e38: U = A_r S_r is inf
    with pytest.raises(ValueError, match=r"^W must be scaled to σ₁ <= 3.4e\+38, got σ₁ = inf$"):
        truncated_svd(W, 2)
    U, V = truncated_svd(W.double(), 2)  # float64 holds it
    assert torch.isfinite(U).all() and torch.isfinite(V).all()


def test_adaptive_range_finder_stops_at_max_rank():
    Q = adaptive_range_finder(with_spectrum(harmonic()), tol=1e-12, max_rank=7, generator=gen(0))
    assert Q.shape == (M, 7)


def test_srft_error_is_within_twice_the_gaussian_error():
    A, size, trials = with_spectrum(harmonic()), 20, 10
    gaussian = sum(
        projection_error(A, range_finder(A, size, generator=gen(t))) for t in range(trials)
    )
    srft = sum(
        projection_error(A, srft_range_finder(A, size, generator=gen(t))) for t in range(trials)
    )
    assert srft <= 2 * gaussian


# -- stage B: SVD and the U V form -------------------------------------------------------------


def test_randomized_svd_singular_values_match_svdvals():
    A = with_spectrum(geometric())
    U, S, Vh = randomized_svd(A, rank=10, generator=gen(0))
    exact = torch.linalg.svdvals(A)[:10]
    assert torch.allclose(S, exact, rtol=1e-6, atol=0)
    assert torch.linalg.matrix_norm(U.mT @ U - torch.eye(10, dtype=U.dtype)) < 1e-10
    assert torch.linalg.matrix_norm(Vh @ Vh.mT - torch.eye(10, dtype=U.dtype)) < 1e-10


def test_truncated_svd_attains_the_eckart_young_optimum():
    σ, r = harmonic(), 20
    A = with_spectrum(σ)
    U, V = truncated_svd(A, r)
    assert (U.shape, V.shape) == ((M, r), (r, N))
    assert spectral_error(A, U, V) == pytest.approx(σ[r].item(), rel=1e-10)
    assert frobenius_error(A, U, V) == pytest.approx(σ[r:].norm().item(), rel=1e-10)


def test_randomized_low_rank_matches_truncated_svd_on_fast_decay():
    A, r = with_spectrum(geometric()), 10
    U, V = randomized_low_rank(A, r, generator=gen(0))
    Ut, Vt = truncated_svd(A, r)
    assert (U.shape, V.shape) == ((M, r), (r, N))
    assert torch.linalg.matrix_norm(U @ V - Ut @ Vt, ord=2) < 1e-10


def test_randomized_low_rank_recovers_rank_k_matrix_exactly():
    A = rank_k(k=10)
    U, V = randomized_low_rank(A, 10, power_iters=0, generator=gen(0))
    assert spectral_error(A, U, V) / torch.linalg.matrix_norm(A, ord=2) < 1e-10


def test_compression_ratio():
    assert compression_ratio(1000, 1000, 50) == 10.0
    assert compression_ratio(784, 1000, 1) == 784 * 1000 / 1784
    assert compression_ratio(1000, 1000, 12.5) == 40.0  # a mean rank over seeds


# -- errors and the bound ------------------------------------------------------------------------


def test_spectral_norm_estimate_is_a_tight_lower_bound():
    σ, k = harmonic(300), 20  # the residual of the optimal rank-k: top values 1/21, 1/22, ...
    A = with_spectrum(σ, m=400, n=300)
    U, V = truncated_svd(A, k)
    exact = torch.linalg.matrix_norm(A - U @ V, ord=2).item()
    estimate = _spectral_norm_estimate(A - U @ V)
    assert exact * (1 - 1e-6) <= estimate <= exact * (1 + 1e-12)


def test_hmt_bound_by_hand_on_a_flat_spectrum():
    k, p, n = 10, 5, 100  # all σ_j = 1: σ_{k+1} = 1 and Σ_{j>k} σ_j^(anything) = n − k
    q0 = (1 + math.sqrt(k / (p - 1))) + math.e * math.sqrt(k + p) / p * math.sqrt(n - k)
    assert hmt_expected_error(torch.ones(n), k, p, 0) == pytest.approx(q0, rel=1e-12)
    assert hmt_expected_error(torch.ones(n), k, p, 2) == pytest.approx(q0 ** (1 / 5), rel=1e-12)


def test_hmt_bound_is_homogeneous_and_above_the_optimum():
    σ = harmonic()
    for q in (0, 1, 5):
        bound = hmt_expected_error(σ, 10, 5, q)
        assert bound > σ[10].item()
        assert hmt_expected_error(1e6 * σ, 10, 5, q) == pytest.approx(1e6 * bound, rel=1e-12)


# -- dtype, device, determinism ------------------------------------------------------------------


def calls(A, g):
    """Every tensor-returning function of the module, as a flat tuple of outputs."""
    return (
        *truncated_svd(A, 5),
        range_finder(A, 8, power_iters=1, generator=g),
        srft_range_finder(A, 8, generator=g),
        adaptive_range_finder(A, tol=1e-3, generator=g),
        *randomized_svd(A, 5, generator=g),
        *randomized_low_rank(A, 5, generator=g),
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_and_device_are_kept(dtype):
    A = with_spectrum(harmonic(), dtype=dtype)
    for out in calls(A, gen(0)):
        assert (out.dtype, out.device) == (dtype, A.device)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("generator_device", ["cuda", "cpu"])
def test_cuda_device_is_kept(generator_device):
    A = with_spectrum(harmonic(), dtype=torch.float32).cuda()
    g = torch.Generator(device=generator_device).manual_seed(0)
    for out in calls(A, g):
        assert (out.dtype, out.device.type) == (torch.float32, "cuda")
    U, V = randomized_low_rank(A, 10, generator=g)
    assert spectral_error(A, U, V) < 1.2 * harmonic()[10].item()


def test_same_seed_gives_identical_output_and_the_global_generator_is_untouched():
    A = with_spectrum(harmonic())
    state = torch.get_rng_state()
    first, again, other = calls(A, gen(7)), calls(A, gen(7)), calls(A, gen(8))
    assert torch.equal(state, torch.get_rng_state())
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[2], other[2])  # the seed matters


# -- bad input -----------------------------------------------------------------------------------

A_OK = torch.randn(20, 10, dtype=torch.float64)
NAN, INF = A_OK.clone(), A_OK.clone()
NAN[3, 4], INF[0, 0] = float("nan"), -float("inf")
BAD_MATRICES = {
    "1-D": torch.randn(10),
    "3-D": torch.randn(2, 3, 4),
    "empty": torch.empty(0, 5),
    "nan": NAN,
    "inf": INF,
    "int": torch.ones(4, 4, dtype=torch.int64),
    "list": [[1.0, 2.0]],
    "bool": torch.ones(4, 4, dtype=torch.bool),
    "half": torch.ones(4, 4, dtype=torch.half),
    "complex": torch.ones(4, 4, dtype=torch.complex64),
}
MATRIX_FUNCTIONS = {  # name -> (function of the matrix, the argument's name)
    "truncated_svd": (lambda A: truncated_svd(A, 1), "W"),
    "range_finder": (lambda A: range_finder(A, 1), "A"),
    "adaptive_range_finder": (lambda A: adaptive_range_finder(A, 0.1), "A"),
    "srft_range_finder": (lambda A: srft_range_finder(A, 1), "A"),
    "randomized_svd": (lambda A: randomized_svd(A, 1), "A"),
    "randomized_low_rank": (lambda A: randomized_low_rank(A, 1), "W"),
    "spectral_error": (lambda A: spectral_error(A, A_OK[:, :1], A_OK[:1]), "A"),
    "frobenius_error": (lambda A: frobenius_error(A, A_OK[:, :1], A_OK[:1]), "A"),
}
BAD_ARGUMENTS = {  # id -> (call, the argument's name)
    "rank 0": (lambda: truncated_svd(A_OK, 0), "rank"),
    "rank > min(m, n)": (lambda: truncated_svd(A_OK, 11), "rank"),
    "rank 2.5": (lambda: randomized_svd(A_OK, 2.5), "rank"),
    "rsvd rank 0": (lambda: randomized_svd(A_OK, 0), "rank"),
    "rsvd rank > min(m, n)": (lambda: randomized_svd(A_OK, 11), "rank"),
    "low rank rank 0": (lambda: randomized_low_rank(A_OK, 0), "rank"),
    "negative oversample": (lambda: randomized_svd(A_OK, 2, oversample=-1), "oversample"),
    "negative power_iters": (lambda: randomized_svd(A_OK, 2, power_iters=-1), "power_iters"),
    "finder negative power_iters": (lambda: range_finder(A_OK, 2, power_iters=-1), "power_iters"),
    "size 0": (lambda: range_finder(A_OK, 0), "size"),
    "size > min(m, n)": (lambda: range_finder(A_OK, 11), "size"),
    "srft size 0": (lambda: srft_range_finder(A_OK, 0), "size"),
    "srft size > min(m, n)": (lambda: srft_range_finder(A_OK, 11), "size"),
    "tol 0": (lambda: adaptive_range_finder(A_OK, 0.0), "tol"),
    "tol < 0": (lambda: adaptive_range_finder(A_OK, -1.0), "tol"),
    "tol nan": (lambda: adaptive_range_finder(A_OK, float("nan")), "tol"),
    "block 0": (lambda: adaptive_range_finder(A_OK, 0.1, block=0), "block"),
    "max_rank 0": (lambda: adaptive_range_finder(A_OK, 0.1, max_rank=0), "max_rank"),
    "factor shapes": (lambda: spectral_error(A_OK, A_OK[:, :2], A_OK[:1]), "U, V"),
    "compression r 0": (lambda: compression_ratio(10, 10, 0), "r"),
    "hmt p 1": (lambda: hmt_expected_error(harmonic(), 10, 1), "p"),
    "hmt k 1": (lambda: hmt_expected_error(harmonic(), 1, 5), "k"),
    "hmt q -1": (lambda: hmt_expected_error(harmonic(), 10, 5, -1), "q"),
    "hmt negative σ": (lambda: hmt_expected_error(-harmonic(), 10, 5), "singular_values"),
    "hmt empty": (lambda: hmt_expected_error(torch.empty(0), 2, 2), "singular_values"),
    "hmt text": (lambda: hmt_expected_error("1 2 3 4", 2, 2), "singular_values"),
    "hmt list of text": (lambda: hmt_expected_error(["a"] * 6, 2, 2), "singular_values"),
    "hmt complex": (
        lambda: hmt_expected_error(harmonic().to(torch.complex128), 10, 5),
        "singular_values",
    ),
    "tol True": (lambda: adaptive_range_finder(A_OK, True), "tol"),
    "tol string": (lambda: adaptive_range_finder(A_OK, "0.1"), "tol"),
    **{
        f"{name} generator=0": (call, "generator")
        for name, call in {
            "range_finder": lambda: range_finder(A_OK, 2, generator=0),
            "adaptive": lambda: adaptive_range_finder(A_OK, 0.1, generator=0),
            "srft": lambda: srft_range_finder(A_OK, 2, generator=0),
            "rsvd": lambda: randomized_svd(A_OK, 2, generator=0),
            "low rank": lambda: randomized_low_rank(A_OK, 2, generator=0),
        }.items()
    },
}


def assert_raises_naming(call, name):
    with pytest.raises(ValueError) as error:
        call()
    message = str(error.value)
    assert message.startswith(f"{name} must be ") and ", got " in message and "\n" not in message


@pytest.mark.parametrize("bad", BAD_MATRICES.values(), ids=BAD_MATRICES.keys())
@pytest.mark.parametrize("function", MATRIX_FUNCTIONS.values(), ids=MATRIX_FUNCTIONS.keys())
def test_bad_matrix_raises_value_error_naming_it(function, bad):
    call, name = function
    assert_raises_naming(lambda: call(bad), name)


@pytest.mark.parametrize("case", BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS.keys())
def test_bad_argument_raises_value_error_naming_it(case):
    assert_raises_naming(*case)


def test_message_states_value_and_allowed_range():
    with pytest.raises(ValueError, match=r"^rank must be an integer in \[1, 10\], got 0$"):
        truncated_svd(A_OK, 0)


# bools are not integers; a huge block or q overflowed in torch or math instead
BAD_INTEGERS = {
    "block True": (lambda: adaptive_range_finder(A_OK, 0.1, block=True), "block"),
    "block 10**30": (lambda: adaptive_range_finder(A_OK, 0.1, block=10**30), "block"),
    "max_rank True": (lambda: adaptive_range_finder(A_OK, 0.1, max_rank=True), "max_rank"),
    "hmt k True": (lambda: hmt_expected_error(harmonic(), True, 5), "k"),
    "hmt q True": (lambda: hmt_expected_error(harmonic(), 10, 5, True), "q"),
    "hmt q 10**30": (lambda: hmt_expected_error(harmonic(), 10, 5, 10**30), "q"),
    "spectral_error list U": (
        lambda: spectral_error(A_OK, A_OK[:, :1].tolist(), A_OK[:1]),
        "U",
    ),
    "spectral_error list A": (lambda: spectral_error(A_OK.tolist(), A_OK[:, :1], A_OK[:1]), "A"),
}


@pytest.mark.parametrize("case", BAD_INTEGERS.values(), ids=BAD_INTEGERS.keys())
def test_bools_huge_integers_and_lists_are_one_line_errors(case):
    assert_raises_naming(*case)


# -- since 2011: block Krylov, single-pass sketches, a posteriori error, signs ----------------


def exact_error(A, U, S, Vh):
    """‖A − U diag(S) Vh‖₂, exactly."""
    return torch.linalg.matrix_norm(A - (U * S) @ Vh, ord=2).item()


def frobenius(A, U, S, Vh):
    return torch.linalg.matrix_norm(A - (U * S) @ Vh).item()


def assert_orthonormal(U, Vh, tol=1e-10):
    r = U.shape[1]
    I = torch.eye(r, dtype=U.dtype)
    assert torch.linalg.matrix_norm(U.mT @ U - I) < tol
    assert torch.linalg.matrix_norm(Vh @ Vh.mT - I) < tol


def test_block_krylov_recovers_rank_k_matrix_exactly():
    A = rank_k(k=10)
    for q in (0, 1, 2):
        U, S, Vh = block_krylov_svd(A, 10, power_iters=q, generator=gen(0))
        assert exact_error(A, U, S, Vh) / torch.linalg.matrix_norm(A, ord=2) < 1e-10


@pytest.mark.parametrize("seed", range(5))
def test_block_krylov_error_is_never_above_subspace_iteration_on_slow_decay(seed):
    # the same seed draws the same Ω, so K ⊇ range(Q): the best rank-k approximation from
    # range(K) is at least as good in the Frobenius norm (exactly), and in practice also in
    # the spectral norm
    A = with_spectrum(harmonic(), seed=100 + seed)
    for k in (5, 10, 20):
        for q in (1, 2, 3):
            subspace = randomized_svd(A, k, 10, q, generator=gen(seed))
            krylov = block_krylov_svd(A, k, 10, q, generator=gen(seed))
            assert exact_error(A, *krylov) <= exact_error(A, *subspace) * (1 + 1e-6)
            assert frobenius(A, *krylov) <= frobenius(A, *subspace) * (1 + 1e-10)


def test_block_krylov_with_depth_0_is_randomized_svd():
    A = with_spectrum(harmonic())
    krylov = block_krylov_svd(A, 10, power_iters=0, generator=gen(3))
    subspace = randomized_svd(A, 10, power_iters=0, generator=gen(3))
    assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(krylov, subspace))


@pytest.mark.parametrize("k, q", [(10, 2), (40, 3)])  # (40 + 10)·4 = 200 > 150: K is capped
def test_block_krylov_returns_orthonormal_factors(k, q):
    A = with_spectrum(harmonic())
    U, S, Vh = block_krylov_svd(A, k, power_iters=q, generator=gen(0))
    assert (U.shape, S.shape, Vh.shape) == ((M, k), (k,), (k, N))
    assert_orthonormal(U, Vh)
    assert exact_error(A, U, S, Vh) >= harmonic()[k].item() * (1 - 1e-12)  # Eckart–Young


def test_block_krylov_whose_basis_fills_the_space_is_the_truncated_svd():
    A, k = with_spectrum(harmonic()), 40  # 4 blocks of 50 > min(m, n) = 150
    U, S, Vh = block_krylov_svd(A, k, power_iters=3, generator=gen(0))
    assert exact_error(A, U, S, Vh) == pytest.approx(harmonic()[k].item(), rel=1e-10)


def test_block_krylov_is_accurate_in_float32():
    σ, k = harmonic(), 40  # as test_subspace_iteration_is_accurate_in_float32
    A = with_spectrum(σ, dtype=torch.float32)
    U, S, Vh = block_krylov_svd(A, k, power_iters=2, generator=gen(0))
    assert spectral_error(A, U * S, Vh) <= 1.1 * σ[k].item()


@pytest.mark.parametrize("true_rank", [3, 5])
def test_single_pass_recovers_a_matrix_of_rank_at_most_r_exactly(true_rank):
    A = rank_k(k=true_rank)
    U, S, Vh = single_pass_svd(A, 5, generator=gen(0))
    assert (U.shape, S.shape, Vh.shape) == ((M, 5), (5,), (5, N))
    assert exact_error(A, U, S, Vh) / torch.linalg.matrix_norm(A, ord=2) < 1e-10
    assert_orthonormal(U, Vh)


def test_sketch_of_a_stream_of_updates_equals_the_sketch_of_their_sum():
    g = gen(5)
    updates = [torch.randn(M, N, generator=g, dtype=torch.float64) for _ in range(4)]
    updates.append(rank_k(k=5))
    stream = Sketch((M, N), 5, dtype=torch.float64, generator=gen(0))
    for H in updates:
        stream.update(H)
    A = sum(updates)
    at_once = Sketch((M, N), 5, dtype=torch.float64, generator=gen(0)).update(A)
    assert torch.allclose(stream.Y, at_once.Y, rtol=0, atol=1e-10 * A.abs().max().item() * N)
    assert torch.allclose(stream.W, at_once.W, rtol=0, atol=1e-10 * A.abs().max().item() * M)
    for a, b in zip(stream.result(), single_pass_svd(A, 5, generator=gen(0))):
        assert torch.allclose(a, b, rtol=1e-8, atol=1e-10)


def test_sketch_sizes_are_the_recommended_k_2r_plus_1_and_l_2k_plus_1():
    sketch = Sketch((M, N), 10, dtype=torch.float64, generator=gen(0))
    assert sketch.Y.shape == (M, 21) and sketch.W.shape == (43, N)
    tiny = Sketch((6, 4), 3, dtype=torch.float64, generator=gen(0))  # capped by m and n
    assert tiny.Y.shape == (6, 4) and tiny.W.shape == (6, 4)


def test_sketch_result_at_a_lower_rank_is_a_prefix():
    sketch = Sketch((M, N), 10, dtype=torch.float64, generator=gen(0))
    sketch.update(with_spectrum(harmonic()))
    U, S, Vh = sketch.result()
    U3, S3, Vh3 = sketch.result(3)
    assert torch.equal(S[:3], S3) and torch.allclose(U[:, :3], U3) and torch.allclose(Vh[:3], Vh3)


@pytest.mark.parametrize("draws, allowed", [(10, 0.0), (1, 0.1)])
def test_estimate_error_bounds_the_true_error_in_the_stated_fraction(draws, allowed):
    # Lemma 4.1: the bound fails with probability at most 10^(−draws); in practice never
    failures, trials = 0, 0
    for seed in range(4):
        for σ in (harmonic(), geometric(ratio=0.9), torch.ones(N)):
            A = with_spectrum(σ, seed=seed)
            for k in (5, 20):
                Q = range_finder(A, k, generator=gen(seed))
                for t in range(5):
                    bound = estimate_error(A, Q, draws, generator=gen(1000 + t))
                    failures += bound < projection_error(A, Q)
                    trials += 1
    assert failures <= allowed * trials


def test_estimate_error_of_an_exact_basis_is_zero_to_rounding():
    A = rank_k(k=10)
    Q = range_finder(A, 10, generator=gen(0))
    assert estimate_error(A, Q, generator=gen(1)) < 1e-10 * torch.linalg.matrix_norm(A, ord=2)


def test_flip_signs_makes_the_largest_entry_of_each_left_vector_positive():
    U = torch.tensor([[0.6, 0.8], [-0.8, 0.6]], dtype=torch.float64)
    Vh = torch.eye(2, dtype=torch.float64)
    U2, S2, Vh2 = flip_signs(U, torch.ones(2), Vh)
    assert torch.equal(U2, torch.tensor([[-0.6, 0.8], [0.8, 0.6]], dtype=torch.float64))
    assert torch.equal(Vh2, torch.tensor([[-1.0, 0.0], [0.0, 1.0]], dtype=torch.float64))
    assert torch.equal(U2 @ Vh2, U @ Vh)  # the product, the matrix, is unchanged


GAPPED = torch.cat([torch.tensor([10.0, 8.0, 6.0, 4.0, 2.0]), 1e-3 * harmonic(N - 5)])
SVDS = {  # name -> (U, S, Vh) of rank 5 from (A, generator)
    "truncated_svd": lambda A, g: (*truncated_svd(A, 5), None),
    "randomized_svd": lambda A, g: randomized_svd(A, 5, generator=g),
    "randomized_low_rank": lambda A, g: (*randomized_low_rank(A, 5, generator=g), None),
    "block_krylov_svd": lambda A, g: block_krylov_svd(A, 5, generator=g),
    "single_pass_svd": lambda A, g: single_pass_svd(A, 5, generator=g),
}


def left_vectors(out):
    """U of (U, S, Vh), or U S / ‖U S‖ column-wise of the (U S, V) form."""
    U = out[0]
    return U / torch.linalg.vector_norm(U, dim=0)


@pytest.mark.parametrize("svd", SVDS.values(), ids=SVDS.keys())
def test_top_singular_vectors_have_the_same_signs_for_20_seeds(svd):
    A = with_spectrum(GAPPED)
    reference = left_vectors(truncated_svd(A, 5))
    for seed in range(20):
        U = left_vectors(svd(A, gen(seed)))
        # each u_j within 0.01 of the exact one: the same sign, not just the same line
        assert torch.linalg.vector_norm(U - reference, dim=0).max() < 1e-2


def test_with_spectrum_has_the_given_singular_values():
    σ = harmonic(50)
    A = package_with_spectrum(σ, 80, 60, generator=gen(0), dtype=torch.float32)
    assert A.shape == (80, 60) and A.dtype == torch.float32
    assert torch.allclose(torch.linalg.svdvals(A.double())[:50], σ, atol=1e-6)


def new_calls(A, g):
    return (
        *block_krylov_svd(A, 5, power_iters=1, generator=g),
        *single_pass_svd(A, 5, generator=g),
        torch.tensor(estimate_error(A, range_finder(A, 5, generator=g), generator=g)),
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_new_methods_keep_the_dtype_and_are_deterministic_per_seed(dtype):
    A = with_spectrum(harmonic(), dtype=dtype)
    state = torch.get_rng_state()
    first, again = new_calls(A, gen(7)), new_calls(A, gen(7))
    assert torch.equal(state, torch.get_rng_state())
    assert all(out.dtype == dtype for out in first[:6])
    assert all(torch.equal(a, b) for a, b in zip(first, again))


NEW_MATRIX_FUNCTIONS = {
    "block_krylov_svd": (lambda A: block_krylov_svd(A, 1), "A"),
    "single_pass_svd": (lambda A: single_pass_svd(A, 1), "A"),
    "estimate_error": (lambda A: estimate_error(A, A_OK[:, :1]), "A"),
    "Sketch.update": (lambda A: Sketch((20, 10), 1, torch.float64).update(A), "H"),
}
NEW_BAD_ARGUMENTS = {
    "krylov rank 0": (lambda: block_krylov_svd(A_OK, 0), "rank"),
    "krylov power_iters -1": (lambda: block_krylov_svd(A_OK, 2, power_iters=-1), "power_iters"),
    "krylov generator=0": (lambda: block_krylov_svd(A_OK, 2, generator=0), "generator"),
    "single pass rank 11": (lambda: single_pass_svd(A_OK, 11), "rank"),
    "sketch dtype": (lambda: Sketch((20, 10), 2, torch.int64), "dtype"),
    "sketch shape": (lambda: Sketch((20, 10), 2, torch.float64).update(A_OK.T), "H"),
    "sketch H dtype": (lambda: Sketch((20, 10), 2).update(A_OK), "H"),
    "sketch result rank": (lambda: Sketch((20, 10), 2, torch.float64).result(6), "rank"),
    "estimate draws 0": (lambda: estimate_error(A_OK, A_OK[:, :1], draws=0), "draws"),
    "estimate Q rows": (lambda: estimate_error(A_OK, A_OK[:5, :1]), "Q"),
    "estimate Q dtype": (lambda: estimate_error(A_OK, A_OK[:, :1].float()), "Q"),
}


@pytest.mark.parametrize("bad", BAD_MATRICES.values(), ids=BAD_MATRICES.keys())
@pytest.mark.parametrize("function", NEW_MATRIX_FUNCTIONS.values(), ids=NEW_MATRIX_FUNCTIONS.keys())
def test_new_methods_refuse_a_bad_matrix_naming_it(function, bad):
    call, name = function
    assert_raises_naming(lambda: call(bad), name)


@pytest.mark.parametrize("case", NEW_BAD_ARGUMENTS.values(), ids=NEW_BAD_ARGUMENTS.keys())
def test_new_methods_refuse_a_bad_argument_naming_it(case):
    assert_raises_naming(*case)
