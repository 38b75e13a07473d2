"""Randomized low-rank approximation after Halko, Martinsson & Tropp (2011).

    import torch
    from lowrank import randomized_low_rank, spectral_error
    g = torch.Generator().manual_seed(0)
    U, V = randomized_low_rank(W, rank=50, generator=g)  # W ≈ U @ V; U: m×50, V: 50×n
    spectral_error(W, U, V)                # ‖W − UV‖₂, at best σ₅₁ (Eckart–Young)

N. Halko, P.-G. Martinsson and J. A. Tropp, "Finding structure with randomness:
probabilistic algorithms for constructing approximate matrix decompositions", SIAM
Review 53(2), 2011, arXiv:0909.4061. Stage A (§4) finds Q with orthonormal columns such
that A ≈ QQᵀA; stage B (§5) factors the small matrix B = QᵀA. The symbols are the
paper's: A is m×n, Ω the n×ℓ random test matrix, Y = AΩ the sample, ℓ = k + p columns
for target rank k and oversampling p, and q power iterations.

Every function keeps its input's dtype and device (scalar results are Python floats) and
draws random numbers only from `generator` (torch's global generator when it is None),
so the same seed gives the same output. Flop counts are for dense A, where a product A·Ω
costs 2mnℓ. Matrices must be float32 or float64 (check_matrix refuses integer, bool, half
and complex tensors with a ValueError rather than convert them: a silent cast would pick the
precision for the caller). Every SVD returned (truncated_svd, randomized_svd,
randomized_low_rank, block_krylov_svd, single_pass_svd, Sketch.result) has its signs fixed
by flip_signs, so the same matrix gives the same singular vectors whatever the seed.
"""

import math

import torch

from lowrank.checks import check, check_generator, check_int, check_matrix, is_real

# min(m, n) above which spectral_error estimates instead of taking a full SVD of the
# residual
EXACT_NORM_MAX = 2000


def _gaussian(A, rows, cols, generator):
    """A standard Gaussian matrix in A's dtype and on A's device, drawn from
    `generator`."""
    device = A.device if generator is None else generator.device
    Ω = torch.randn(rows, cols, generator=generator, device=device, dtype=A.dtype)
    return Ω.to(A.device)


def _orth(Y):
    """An orthonormal basis of range(Y), by Householder QR."""
    return torch.linalg.qr(Y).Q


def _times(A, X):
    """AX for a thin X, computed as (XᵀAᵀ)ᵀ: the same numbers, but BLAS then writes a
    tall column-major result, which MKL does ~1.5× faster on CPU than the short, wide
    row-major one."""
    return (X.mT @ A.mT).mT


def _subspace_iteration(A, Ω, q):
    Q = _orth(_times(A, Ω))
    for _ in range(q):
        # Algorithm 4.3 forms Y = (AAᵀ)^q AΩ and orthonormalises once; in floating point
        # that loses every singular direction below ε^(1/(2q+1))·‖A‖ (float32, q = 2: 4%
        # of ‖A‖). Orthonormalising after every product by A and Aᵀ (Algorithm 4.4)
        # keeps them.
        Q = _orth(_times(A, _orth(_times(A.mT, Q))))
    return Q


def flip_signs(U, S, Vh):
    """U, S, Vh with each pair (u_j, v_j) negated where needed so that u_j's entry of largest
    magnitude is positive (the first such entry on a tie).

    An SVD fixes each pair only up to a common sign; this choice, scikit-learn's svd_flip with
    u_based_decision=True, makes the output a function of the matrix alone, not of the random
    draws or the LAPACK call that produced it (for distinct singular values, and as long as
    the entry of largest magnitude is not a near-tie). Cost: O((m + n)r).
    """
    j = torch.arange(U.shape[1], device=U.device)
    s = torch.where(U[U.abs().argmax(dim=0), j] < 0, -1, 1).to(U)
    return U * s, S, Vh * s[:, None]


def truncated_svd(W, rank):
    """Best rank-r approximation W_r = U V from the full SVD W = U_W Σ V_Wᵀ.

    U = (U_W)_r Σ_r (m×r), V = (V_W)_rᵀ (r×n), and ‖W − UV‖₂ = σ_{r+1} (Eckart–Young,
    Mirsky). Step 2's naive compression. Cost: a full SVD, O(mn·min(m, n)) flops
    (≈20 s for 4096×4096 float32 on two cores).
    """
    m, n = check_matrix(W, "W")
    check_int(rank, "rank", 1, min(m, n))
    # U = U_W, Vh = V_Wᵀ: the singular vectors, before truncation and scaling
    U, S, Vh = flip_signs(*torch.linalg.svd(W, full_matrices=False))
    # LAPACK scales W internally, but σ₁ itself may exceed the dtype's largest number
    big = torch.finfo(W.dtype).max
    σ1 = S[0].item()
    check(math.isfinite(σ1), "W", f"scaled to σ₁ <= {big:.3g}", f"σ₁ = {σ1:.3g}")
    # clone: a slice would keep all of Vh alive, and torch.save would write all of it
    return U[:, :rank] * S[:rank], Vh[:rank].clone()


def compression_ratio(m, n, r):
    """Storage of an m×n matrix over that of its rank-r factors U (m×r), V (r×n):
    mn / (r(m + n)). r may be a mean over seeds (any real in [1, min(m, n)])."""
    check_int(m, "m", 1)
    check_int(n, "n", 1)
    ok = is_real(r) and 1 <= r <= min(m, n)
    check(ok, "r", f"a number in [1, {min(m, n)}]", repr(r))
    return m * n / (r * (m + n))


def range_finder(A, size, power_iters=0, generator=None):
    """Q (m×ℓ, orthonormal columns) with A ≈ QQᵀA: Algorithm 4.1, or 4.4 for
    power_iters = q > 0.

    Algorithm 4.1 (randomized range finder): Y = AΩ for a Gaussian n×ℓ Ω, Q = orth(Y).
    Algorithm 4.4 (randomized subspace iteration) then applies (AAᵀ)^q, which raises the
    singular values to the power 2q + 1 and so sharpens their decay, orthonormalising
    after each product. Cost: (2q + 1)·2mnℓ flops for the products plus (2q + 1) QRs of
    O((m + n)ℓ²); 2q + 1 passes over A.
    """
    m, n = check_matrix(A)
    check_int(size, "size", 1, min(m, n))
    check_int(power_iters, "power_iters", 0)
    check_generator(generator)
    return _subspace_iteration(A, _gaussian(A, n, size, generator), power_iters)


def adaptive_range_finder(A, tol, block=10, generator=None, max_rank=None):
    """Q with ‖A − QQᵀA‖₂ ≤ tol, with probability ≥ 1 − min(m, n)·10^(−block):
    Algorithm 4.2.

    Q grows one column at a time from samples y = Aω until `block` consecutive samples,
    projected away from range(Q), are all shorter than tol / (10√(2/π)); by Lemma 4.1
    that certifies the error, up to the stated probability. Stops early, without the
    guarantee, at max_rank columns. Cost: k + block products A·ω, 2mn(k + block) flops
    plus O(mk²) for the projections, where k = Q.shape[1]; k + block passes over A (one
    vector each).

    A tol below least_tolerance(A), about 100√min(m, n)·ε·‖A‖_F, is rejected with a
    ValueError: rounding error keeps the samples from ever getting that short, so Q
    would grow to min(m, n) columns, lose orthonormality, and miss tol by far.
    """
    m, n = check_matrix(A)
    check(is_real(tol) and tol > 0, "tol", "a finite number > 0", repr(tol))
    # 100: a failure probability of min(m, n)·10^(−100) is long past what 1 − P can show
    check_int(block, "block", 1, 100)
    max_rank = min(m, n) if max_rank is None else max_rank
    check_int(max_rank, "max_rank", 1, min(m, n))
    check_generator(generator)
    least = least_tolerance(A)
    check(
        tol >= least,
        "tol",
        f">= {least:.3g} for this {str(A.dtype)[6:]} A (least_tolerance(A))",
        repr(tol),
    )
    threshold = tol / (10 * math.sqrt(2 / math.pi))
    Q = A.new_empty(m, 0)
    # y(j+1), ..., y(j+r), already orthogonal to Q
    Y = A @ _gaussian(A, n, block, generator)
    while Q.shape[1] < max_rank and torch.linalg.vector_norm(Y, dim=0).max() > threshold:
        # step 5 projects y(j) away from Q a second time: in floating point one
        # projection leaves a component of size ε‖y‖ along Q, and Q would slowly lose
        # orthogonality
        y = Y[:, :1] - Q @ (Q.mT @ Y[:, :1])
        q = y / torch.linalg.vector_norm(y)
        Q = torch.cat([Q, q], dim=1)
        y_new = A @ _gaussian(A, n, 1, generator)
        Y = torch.cat([Y[:, 1:] - q @ (q.mT @ Y[:, 1:]), y_new - Q @ (Q.mT @ y_new)], dim=1)
    return Q


def least_tolerance(A):
    """The least tol adaptive_range_finder accepts for A: 10√(2/π)·4√min(m, n)·ε·‖A‖_F.

    Rounding leaves each stored sample a component of a few ε‖A‖_F per column of Q, so
    the stopping threshold tol / (10√(2/π)) must lie well above √min(m, n)·ε‖A‖_F. With
    2 in place of 4, tol was still met in 144 runs (float32 and float64, 200×150 to
    1500×60, four spectra, three seeds); with 1 it was missed by up to 10⁸×.
    Cost: 2mn flops.
    """
    m, n = check_matrix(A)
    ε = torch.finfo(A.dtype).eps
    floor = 4 * math.sqrt(min(m, n)) * ε * torch.linalg.vector_norm(A).item()
    return 10 * math.sqrt(2 / math.pi) * floor


def srft_range_finder(A, size, generator=None):
    """Q (m×ℓ, orthonormal columns) with A ≈ QQᵀA from a structured test matrix:
    Algorithm 4.5.

    The subsampled randomized Fourier transform Ω = √(n/ℓ)·D F R: D random signs on the
    diagonal, F an n×n orthogonal Fourier-type transform, R ℓ columns of the identity
    chosen at random. The paper takes F the complex DFT and D random phases; for real A
    we take the discrete Hartley transform H = Re F − Im F, which is real and orthogonal
    (up to √n), so Q stays real. The scale √(n/ℓ) does not change range(Y) and is left
    out. Cost: one FFT per row of A, O(mn log n) flops (the paper's pruned FFT gets O(mn
    log ℓ); torch has none), plus a QR of O(mℓ²); one pass over A.
    """
    m, n = check_matrix(A)
    check_int(size, "size", 1, min(m, n))
    check_generator(generator)
    device = A.device if generator is None else generator.device
    D = torch.randint(0, 2, (n,), generator=generator, device=device).to(A) * 2 - 1
    R = torch.randperm(n, generator=generator, device=device)[:size].to(A.device)
    # rfft computes only F_0..F_{n/2} of each real row (~1.4x faster than fft at
    # n = 1000 and 4096); the rest are conjugates, F_j = conj(F_{n-j}), so for j > n/2
    # H_j = Re F_{n-j} + Im F_{n-j}
    F = torch.fft.rfft(A * D, dim=1)[:, torch.minimum(R, n - R)]
    sign = torch.where(R <= n // 2, -1, 1).to(A)
    return _orth(F.real + sign * F.imag)


def _check_svd_args(A, name, rank, oversample, power_iters, generator):
    """Validate randomized_svd's arguments and return ℓ = min(k + p, m, n)."""
    m, n = check_matrix(A, name)
    check_int(rank, "rank", 1, min(m, n))
    check_int(oversample, "oversample", 0)
    check_int(power_iters, "power_iters", 0)
    check_generator(generator)
    return min(rank + oversample, m, n)


def _svd(A, k, ℓ, q, generator):
    Q = _subspace_iteration(A, _gaussian(A, A.shape[1], ℓ, generator), q)
    return _stage_b(A, Q, k)


def _stage_b(A, Q, k):
    """The leading k triplets of QQᵀA (Algorithm 5.1): B = QᵀA = Ũ S Vh, U = QŨ."""
    B = Q.mT @ A
    # factor the tall Bᵀ = V S Ũᵀ rather than the wide B = Ũ S Vᵀ: LAPACK is ~2× faster
    V, S, Ũh = torch.linalg.svd(B.mT, full_matrices=False)
    return flip_signs(Q @ Ũh[:k].mT, S[:k], V[:, :k].mT.contiguous())


def randomized_svd(A, rank, oversample=10, power_iters=2, generator=None):
    """U, S, Vh with A ≈ U diag(S) Vh of rank k: Algorithm 5.1 on the Q of Algorithm
    4.4, truncated.

    Stage A: Q = range_finder(A, ℓ, q) with ℓ = min(k + p, m, n). Stage B: B = QᵀA
    (ℓ×n), B = Ũ S Vh, U = QŨ, and keep the leading k triplets. Cost: (2q + 2)·2mnℓ
    flops for the products plus O((m + n)ℓ²); 2q + 2 passes over A.
    """
    ℓ = _check_svd_args(A, "A", rank, oversample, power_iters, generator)
    return _svd(A, rank, ℓ, power_iters, generator)


def randomized_low_rank(W, rank, oversample=10, power_iters=2, generator=None):
    """U (m×r), V (r×n) with W ≈ UV from randomized_svd, in the form truncated_svd
    returns.

    U = U_r diag(S_r), V = Vh_r. Cost: that of randomized_svd plus O(mr).
    """
    ℓ = _check_svd_args(W, "W", rank, oversample, power_iters, generator)
    U, S, Vh = _svd(W, rank, ℓ, power_iters, generator)
    return U * S, Vh


def _check_factors(A, U, V):
    m, n = check_matrix(A)
    check_matrix(U, "U")
    check_matrix(V, "V")
    check(
        U.shape[0] == m and V.shape[1] == n and U.shape[1] == V.shape[0],
        "U, V",
        f"of shapes ({m}, r) and (r, {n})",
        f"{tuple(U.shape)} and {tuple(V.shape)}",
    )


def _spectral_norm_estimate(R, block=16, steps=30):
    """A lower bound on ‖R‖₂: the top Ritz value after `steps` of block subspace
    iteration."""
    # fixed seed: the estimate is reproducible
    g = torch.Generator(device=R.device).manual_seed(0)
    X = torch.randn(R.shape[1], block, generator=g, device=R.device, dtype=R.dtype)
    for _ in range(steps):
        X = _orth(R.mT @ _orth(R @ X))
    return torch.linalg.matrix_norm(R @ X, ord=2).item()


def spectral_error(A, U, V):
    """‖A − UV‖₂: exact when min(m, n) ≤ EXACT_NORM_MAX, else a stated estimate.

    Exact: the largest singular value of the residual R = A − UV, by a full SVD,
    O(mn·min(m, n)) flops. Above EXACT_NORM_MAX that is too slow to repeat (≈1 min at
    4096² in float64 here), and we return the top Ritz value of 30 steps of block
    subspace iteration (block 16, fixed seed) on R instead: a lower bound, 60 products
    with an n×16 block, ≈ 2000mn flops. On 4096×4096 residuals with σ_j = 1/j (k = 20
    and 200, q = 0 and 2) it agreed with the exact norm to 1e-6 relative. Computed in
    A's dtype.
    """
    _check_factors(A, U, V)
    R = A - U @ V
    if min(A.shape) <= EXACT_NORM_MAX:
        return torch.linalg.matrix_norm(R, ord=2).item()
    return _spectral_norm_estimate(R)


def frobenius_error(A, U, V):
    """‖A − UV‖_F, in A's dtype. Cost: 2mnr flops for UV plus 2mn for the norm."""
    _check_factors(A, U, V)
    return torch.linalg.matrix_norm(A - U @ V).item()


def hmt_expected_error(singular_values, k, p, q=0):
    """Bound on E‖A − QQᵀA‖₂ for Q = range_finder(A, k + p, q): Theorem 10.6,
    Corollary 10.10.

    E‖(I − P_Y)A‖ ≤ [(1 + √(k/(p − 1)))·σ_{k+1}^(2q+1)
                     + (e√(k + p)/p)·(Σ_{j>k} σ_j^(2(2q+1)))^(1/2)]^(1/(2q+1)),
    which for q = 0 is Theorem 10.6 and for q > 0 Corollary 10.10 (proved for exact
    arithmetic, where Algorithms 4.3 and 4.4 give the same Q). Needs k ≥ 2, p ≥ 2,
    k + p ≤ min(m, n).
    `singular_values` are all of A's, in any order. Cost: O(min(m, n)).
    """
    σ = _real_vector(singular_values)
    check(σ.ndim == 1, "singular_values", "a 1-D tensor", f"shape {tuple(σ.shape)}")
    check(len(σ) >= 4, "singular_values", "at least 4 values (k, p >= 2)", len(σ))
    ok = bool(torch.isfinite(σ).all() & (σ >= 0).all())
    check(
        ok, "singular_values", "finite and >= 0", f"values in [{σ.min().item()}, {σ.max().item()}]"
    )
    check_int(k, "k", 2, len(σ) - 2)
    check_int(p, "p", 2, len(σ) - k)
    # q as range_finder's power iterations; a q of no possible run overflowed σ^(2(2q+1))
    check_int(q, "q", 0, 1000)
    σ = σ.sort(descending=True).values
    if σ[k] == 0:  # rank(A) ≤ k: Y captures range(A) exactly
        return 0.0
    # the bound is homogeneous in σ; measuring σ in units of σ_{k+1} keeps σ^(2(2q+1))
    # finite
    scale, σ, s = σ[k].item(), σ / σ[k], 2 * q + 1
    head = 1 + math.sqrt(k / (p - 1))
    tail = math.e * math.sqrt(k + p) / p * torch.sum(σ[k:] ** (2 * s)).sqrt().item()
    return scale * (head + tail) ** (1 / s)


def _real_vector(values):
    """values as a float64 CPU tensor if they are real numbers; else a ValueError."""
    tensor = isinstance(values, torch.Tensor)
    σ = None
    if not isinstance(values, (str, bytes)) and not (tensor and values.is_complex()):
        try:  # as_tensor would take the real part of a complex tensor, with a warning
            σ = torch.as_tensor(values, dtype=torch.float64).cpu()
        except (TypeError, ValueError, RuntimeError):
            pass
    got = f"a {values.dtype} tensor" if tensor else type(values).__name__
    check(σ is not None, "singular_values", "real numbers", got)
    return σ


# -- since 2011: block Krylov, single-pass sketches, a posteriori error ------------------------


def _block_krylov(A, Ω, q):
    """An orthonormal basis K of span[Y, (AAᵀ)Y, ..., (AAᵀ)^q Y] for Y = AΩ, at most
    min(m, n) columns: block Lanczos with full reorthogonalisation."""
    size = min((q + 1) * Ω.shape[1], *A.shape)
    blocks = [_orth(_times(A, Ω))]
    width = blocks[0].shape[1]
    for _ in range(q):
        if width >= size:
            break
        K = torch.cat(blocks, dim=1)
        # the same orthonormalised products as subspace iteration: (AAᵀ)Q_i spans the next
        # block up to a change of basis, and float32 keeps the small singular directions
        X = _times(A, _orth(_times(A.mT, blocks[-1])))
        # project away from K twice: once leaves a component of size ε‖X‖ along K, and
        # the basis would slowly lose orthogonality (the Lanczos instability)
        for _ in range(2):
            X = X - K @ (K.mT @ X)
        blocks.append(_orth(X[:, : size - width]))
        width += blocks[-1].shape[1]
    return torch.cat(blocks, dim=1)


def block_krylov_svd(A, rank, oversample=10, power_iters=2, generator=None):
    """U, S, Vh with A ≈ U diag(S) Vh of rank k by block Krylov iteration: Musco & Musco
    (2015), Algorithm 2; Tropp & Webber (2023), arXiv:2306.12418.

    Where subspace iteration keeps only the last block (AAᵀ)^q AΩ, this keeps every block:
    K = orth[AΩ, (AAᵀ)AΩ, ..., (AAᵀ)^q AΩ] ((q + 1)ℓ columns, at most min(m, n)), then
    Rayleigh–Ritz, the SVD of KᵀA, as in randomized_svd's stage B. K contains range_finder's
    Q for the same Ω (the same generator state), so its Frobenius error is never larger.
    q = 0 is randomized_svd with q = 0. Arguments, checks and return convention are
    randomized_svd's; A float32 or float64 (integer matrices are refused, see the module).

    Passes over A: 2q + 2, the same as randomized_svd at the same q: 2q + 1 to build K and one
    for KᵀA. That last product is (q + 1) times wider, so flops are (3q + 2)·2mnℓ against
    (2q + 2)·2mnℓ, plus O(m((q + 1)ℓ)²) to reorthogonalise and O(n((q + 1)ℓ)²) for the SVD.
    """
    ℓ = _check_svd_args(A, "A", rank, oversample, power_iters, generator)
    K = _block_krylov(A, _gaussian(A, A.shape[1], ℓ, generator), power_iters)
    return _stage_b(A, K, rank)


class Sketch:
    """The linear sketches Y = AΩ (m×k) and W = ΨA (ℓ×n) of an m×n matrix A that is seen
    once, as a sum of updates A = H₁ + H₂ + ...: Tropp, Yurtsever, Udell & Cevher (2017),
    "Practical sketching algorithms for low-rank matrix approximation", SIMAX 38(4),
    Algorithms 1, 2, 3 and 7.

        sketch = Sketch(W.shape, rank=20, dtype=W.dtype, generator=g)
        for H in updates:
            sketch.update(H)
        U, S, Vh = sketch.result()

    k = 2r + 1 and ℓ = 2k + 1 (capped at min(m, n) and m), the sizes §5.4 recommends for a
    fixed rank r. Storage: (m + n)k + (m + n)ℓ numbers for Ω, Ψ, Y, W, about 6(m + n)r.
    """

    def __init__(self, shape, rank, dtype=torch.float32, device="cpu", generator=None):
        check(len(shape) == 2, "shape", "(m, n)", tuple(shape))
        m, n = shape
        check_int(m, "m", 1)
        check_int(n, "n", 1)
        check_int(rank, "rank", 1, min(m, n))
        check(dtype in (torch.float32, torch.float64), "dtype", "float32 or float64", dtype)
        check_generator(generator)
        self.rank = rank
        k = min(2 * rank + 1, m, n)
        ℓ = min(2 * k + 1, m)
        self.Y = torch.zeros(m, k, dtype=dtype, device=device)
        self.W = torch.zeros(ℓ, n, dtype=dtype, device=device)
        self.Ω = _gaussian(self.Y, n, k, generator)
        self.Ψ = _gaussian(self.Y, ℓ, m, generator)

    def update(self, H):
        """A ← A + H (Algorithm 2 with θ = η = 1): Y += HΩ, W += ΨH. Cost: 2mn(k + ℓ)
        flops for a dense H; returns the sketch."""
        m, n = check_matrix(H, "H")
        shape = (self.Y.shape[0], self.W.shape[1])
        check((m, n) == shape, "H", f"of shape {shape}", tuple(H.shape))
        check(H.dtype == self.Y.dtype, "H", f"of the sketch's dtype {self.Y.dtype}", H.dtype)
        self.Y += _times(H, self.Ω)
        self.W += self.Ψ @ H
        return self

    def result(self, rank=None):
        """U, S, Vh of the rank-r approximation Q [X]_r, X = (ΨQ)^† W, Q = orth(Y):
        Algorithm 7 (fixed-rank). r defaults to the rank the sketch was sized for.

        Exact when rank(A) ≤ r: then Y spans range(A), W = (ΨQ)(QᵀA) and X = QᵀA. The
        pseudo-inverse is applied by a QR of ΨQ (Algorithm 3). Cost: O(mk² + ℓkn + k²n).
        """
        rank = self.rank if rank is None else rank
        check_int(rank, "rank", 1, self.Y.shape[1])
        Q = _orth(self.Y)
        P, T = torch.linalg.qr(self.Ψ @ Q)
        X = torch.linalg.solve_triangular(T, P.mT @ self.W, upper=True)
        Ũ, S, Vh = torch.linalg.svd(X, full_matrices=False)
        return flip_signs(Q @ Ũ[:, :rank], S[:rank], Vh[:rank].contiguous())


def single_pass_svd(A, rank, generator=None):
    """U, S, Vh with A ≈ U diag(S) Vh of rank r from one pass over A: Sketch(A.shape, r)
    updated with A once, then its result (Tropp et al. 2017, Algorithm 7).

    For a matrix that is at hand this is one product with Ω and one with Ψ, 2mn(k + ℓ) ≈
    12mnr flops, no power iterations: it is for A that can be read only once. A float32 or
    float64 (integer matrices are refused, see the module).
    """
    m, n = check_matrix(A)
    check_int(rank, "rank", 1, min(m, n))
    check_generator(generator)
    return Sketch(A.shape, rank, A.dtype, A.device, generator).update(A).result()


def estimate_error(A, Q, draws=10, generator=None):
    """A bound on ‖(I − QQᵀ)A‖₂ that holds with probability at least 1 − 10^(−draws): HMT
    §4.3, eq. (4.3) (Lemma 4.1 with α = 10).

    10√(2/π)·max_i ‖(I − QQᵀ)Aω_i‖ for `draws` Gaussian vectors ω_i. Q must have orthonormal
    columns (not checked) and A's dtype, float32 or float64. Cost: 2mn·draws flops for AΩ,
    one pass over A, plus 4mk·draws for the projection, where k = Q.shape[1].
    """
    m, n = check_matrix(A)
    check_matrix(Q, "Q")
    check(Q.shape[0] == m, "Q", f"of shape ({m}, k)", tuple(Q.shape))
    check(Q.dtype == A.dtype, "Q", f"of A's dtype {A.dtype}", Q.dtype)
    check_int(draws, "draws", 1)
    check_generator(generator)
    Y = _times(A, _gaussian(A, n, draws, generator))
    R = Y - Q @ (Q.mT @ Y)
    return 10 * math.sqrt(2 / math.pi) * torch.linalg.vector_norm(R, dim=0).max().item()


def with_spectrum(σ, m, n, generator=None, dtype=torch.float64):
    """A test matrix X diag(σ) Yᵀ (m×n) whose singular values are σ: X (m×r) and Y (n×r)
    orthonormal, from the QR of Gaussian matrices (Haar-distributed), r = len(σ) ≤ min(m, n).

    Built in float64, then cast to dtype. Cost: O((m + n)r²) for the QRs plus 2mnr.
    """
    σ = torch.as_tensor(σ, dtype=torch.float64)
    check(σ.ndim == 1, "σ", "a 1-D tensor", f"shape {tuple(σ.shape)}")
    check_int(m, "m", 1)
    check_int(n, "n", 1)
    check(1 <= len(σ) <= min(m, n), "σ", f"of length in [1, {min(m, n)}]", len(σ))
    check_generator(generator)
    r = len(σ)
    X = _orth(torch.randn(m, r, generator=generator, dtype=torch.float64))
    Y = _orth(torch.randn(n, r, generator=generator, dtype=torch.float64))
    return ((X * σ) @ Y.T).to(dtype)
