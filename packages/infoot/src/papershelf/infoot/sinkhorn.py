r"""Entropic OT solvers for the inner step of InfoOT.

Two solvers of :math:`\min_{\Gamma \in U(a, b)} \langle \Gamma, M\rangle - \varepsilon H(\Gamma)`:

* :func:`sinkhorn_scaling` runs the iterations of ``ot.bregman.sinkhorn`` (POT's scaling
  form, its stopping rule, its error check every 10 iterations, its 0/inf/NaN fallback), so
  that a truncated run (the official code's 1000-iteration cap) gives the same plan. On numpy
  arrays it reads one kernel where POT reads two (``K`` and ``diag(1/a) K``, and a third every
  10 iterations for the error): a kernel that fits the last-level cache takes two whole
  mat-vecs, a larger one one pass per iteration, row blocks giving their entries of :math:`u`
  and, while still in cache, their share of :math:`K^\top u`; 0/inf/NaN are tested every 10
  iterations and located exactly by a replay. Only the rounding differs from POT (plans equal
  to ~1e-15 relative after 1000 iterations). Other arrays
  (torch, any device) follow POT's two products exactly.
* :func:`sinkhorn_log` is a log-domain Sinkhorn with warm start that runs until the column
  marginals are met to ``tol`` (L1): stable for small ``reg`` and large costs.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy.linalg.blas import get_blas_funcs
from sklearn.exceptions import ConvergenceWarning

from papershelf.core.validation import check_int, check_real
from papershelf.infoot._backend import backend_of

__all__ = [
    "SinkhornConvergenceWarning",
    "SinkhornResult",
    "round_to_polytope",
    "sinkhorn_log",
    "sinkhorn_scaling",
    "sinkhorn_warm",
]

# the torch path checks convergence and 0/inf/NaN every this many iterations (one host sync)
CHECK_EVERY = 10


class SinkhornResult:
    """Plan and diagnostics of one Sinkhorn solve.

    Attributes
    ----------
    plan : array, shape (n, m)
    n_iter : int
        Iterations run.
    err : float
        Last measured column-marginal error (POT: L2 for the scaling form; L1 for the log form).
    converged : bool
    numerical_error : bool
        The scaling form hit 0/inf/NaN and returned the previous scalings (as POT does).
    potentials : tuple of arrays or None
        Log scalings ``(alpha, beta)`` of the log form (for warm starts).
    """

    __slots__ = ("converged", "err", "n_iter", "numerical_error", "plan", "potentials")

    def __init__(
        self,
        plan: Any,
        n_iter: int,
        err: float,
        converged: bool,
        numerical_error: bool = False,
        potentials: tuple[Any, Any] | None = None,
    ) -> None:
        self.plan = plan
        self.n_iter = n_iter
        self.err = err
        self.converged = converged
        self.numerical_error = numerical_error
        self.potentials = potentials


def _check_reg(reg: Any) -> float:
    return check_real("reg", reg, low=0.0, inclusive=False)


class SinkhornConvergenceWarning(ConvergenceWarning):
    """An inner Sinkhorn solve stopped at its iteration cap (POT warns in the same case)."""


def _check_problem(a: Any, b: Any, M: Any) -> None:
    nx = backend_of(a, b, M)
    if M.ndim != 2 or tuple(M.shape) != (a.shape[0], b.shape[0]):
        raise ValueError(
            f"M must have shape ({a.shape[0]}, {b.shape[0]}) for a of shape {tuple(a.shape)} "
            f"and b of shape {tuple(b.shape)}, got {tuple(M.shape)}"
        )
    if a.shape[0] == 0 or b.shape[0] == 0:
        raise ValueError(
            f"a and b (the marginals) must be non-empty, got shapes {tuple(a.shape)} and "
            f"{tuple(b.shape)}"
        )
    if bool(nx.any(~nx.isfinite(M))):
        raise ValueError("M (the cost) contains NaN or infinite values")
    if bool(nx.any(~nx.isfinite(a))) or bool(nx.any(~nx.isfinite(b))):
        raise ValueError("a and b (the marginals) must be finite")
    if bool(nx.any(a <= 0)) or bool(nx.any(b <= 0)):
        raise ValueError("a and b (the marginals) must be positive")


def _warn_unconverged(name: str, n_iter: int, err: float, tol: float) -> None:
    warnings.warn(
        f"{name} did not converge in {n_iter} iterations (marginal error {err:.2e} > tol "
        f"{tol:.1e}); increase max_iter or reg",
        SinkhornConvergenceWarning,
        stacklevel=3,
    )


def sinkhorn_scaling(
    a: Any, b: Any, M: Any, reg: float, max_iter: int = 1000, tol: float = 1e-9, warn: bool = True
) -> SinkhornResult:
    r"""Scaling-form Sinkhorn with the iterations of ``ot.bregman.sinkhorn(a, b, M, reg)``.

    Iterates :math:`v = b / K^\top u`, :math:`u = 1 / (\mathrm{diag}(1/a) K v)` with
    :math:`K = e^{-M/\varepsilon}`, checks :math:`\|v \odot K^\top u - b\|_2 < \mathrm{tol}`
    every 10 iterations, and on a 0/inf/NaN returns the previous scalings (POT's behaviour).
    Rows of the plan are exact; columns are exact only at convergence. numpy arrays take a
    one-kernel loop (see the module docstring; plan equal to POT's to rounding,
    ~1e-15 relative); torch tensors take POT's two products per iteration.

    Parameters
    ----------
    a : array, shape (n,)
    b : array, shape (m,)
    M : array, shape (n, m)
        Cost.
    reg : float
        Entropic regularisation :math:`\varepsilon > 0`.
    max_iter : int
        Iteration cap (POT's default 1000, which the official InfoOT inherits).
    tol : float
        Stopping threshold on the L2 column error (POT's default 1e-9).
    warn : bool
        Warn (:class:`SinkhornConvergenceWarning`) when the cap is hit, as POT does.

    Returns
    -------
    SinkhornResult

    Raises
    ------
    ValueError
        If ``M`` has NaN/inf entries, shapes disagree or a marginal is not positive.
    """
    reg = _check_reg(reg)
    max_iter = check_int("max_iter", max_iter, low=1)
    tol = check_real("tol", tol, low=0.0)
    _check_problem(a, b, M)
    res = _sinkhorn_scaling_dispatch(a, b, M, reg, max_iter, tol)
    if warn and not res.converged and not res.numerical_error:
        _warn_unconverged("sinkhorn_scaling", res.n_iter, res.err, tol)
    return res


def _sinkhorn_scaling_dispatch(
    a: Any, b: Any, M: Any, reg: float, max_iter: int, tol: float
) -> SinkhornResult:
    """The scaling form without argument checks (the outer loop's inner step)."""
    # 0/inf/NaN are detected and handled below (as POT does): no numpy warnings per step
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if (
            all(isinstance(x, np.ndarray) for x in (a, b, M))
            and M.ndim == 2
            and M.dtype in (np.float32, np.float64)
            and a.dtype == b.dtype == M.dtype
        ):
            return _sinkhorn_scaling_numpy(a, b, M, reg, max_iter, tol)
        return _sinkhorn_scaling(a, b, M, reg, max_iter, tol)


# A kernel up to this size stays in the last-level cache between the two whole mat-vecs of an
# iteration; a larger one is read once per iteration in row blocks of about _BLOCK_BYTES, each
# still in cache for its second product (measured on a 2-core EPYC, 1 MB L2 per core, 32 MB
# L3: whole mat-vecs 10% faster at n = 1000, 2 MB blocks 11% faster than 1 MB at n = 2000)
_WHOLE_BYTES = 8 << 20
_BLOCK_BYTES = 2 << 20
_FAST_BLOCK_BYTES = 1 << 20  # sinkhorn_warm's (float32) row blocks


def _sinkhorn_scaling_numpy(
    a: np.ndarray, b: np.ndarray, M: np.ndarray, reg: float, max_iter: int, tol: float
) -> SinkhornResult:
    """POT's iteration sequence reading one kernel instead of POT's two (numpy only).

    POT reads two n x m matrices per iteration (``K.T @ u`` and ``Kp @ v``) and a third every
    10 iterations (the error check). Here a kernel that fits the last-level cache
    (``_WHOLE_BYTES``) takes two whole mat-vecs of the one matrix ``K``; a larger one is read
    once per iteration: each row block of ``K`` gives its rows of ``u = a / (K v)`` and, while
    it is still in cache, adds its share of ``K^T u`` (BLAS ``gemv`` with ``beta = 1``). The
    last ``K^T u`` serves the next iteration and the error check. The updates,
    their order, the stopping test and the 0/inf/NaN fallback are POT's; only the rounding
    differs (``a / (K v)`` for POT's ``1 / (diag(1/a) K v)``, and the summation order of
    ``K^T u``): ~1e-15 relative on the plan.

    POT tests the scalings for 0/inf/NaN after every iteration; here they are tested when the
    error is (every 10 iterations, and after the last), against a copy of the last tested
    state. A failure is located exactly by replaying the iterations since that copy with a
    test after each (the arithmetic is deterministic, and once an iterate is 0/inf/NaN every
    later one is too), so the returned scalings and count are POT's.
    """
    n, m = M.shape
    K = np.divide(M, -reg)
    np.exp(K, out=K)
    gemv = get_blas_funcs("gemv", (K,))
    n_blocks = 1 if K.nbytes <= _WHOLE_BYTES else -(-K.nbytes // _BLOCK_BYTES)
    rows = -(-n // n_blocks)
    u = np.ones(n, dtype=K.dtype) / n
    v = np.ones(m, dtype=K.dtype) / m
    # per block: the rows of K, their transpose (Fortran order, as gemv wants it), the rows
    # of a and the matching rows of u
    blocks = [(K[s : s + rows], K[s : s + rows].T, a[s : s + rows], u[s : s + rows])
              for s in range(0, n, rows)]  # fmt: skip
    # alternate the block order: the blocks read last in one iteration are still in cache
    # for the first products of the next (~10% faster, measured with 1 MB blocks at n = 1000)
    orders = (blocks, blocks[::-1])
    KtU = K.T @ u
    dot, divide, peak = np.dot, np.divide, np.maximum.reduce

    def step(ii: int, KtU: np.ndarray) -> np.ndarray:
        """Iteration ``ii`` in place: v = b / K^T u, u = a / K v, then K^T u (returned)."""
        divide(b, KtU, out=v)
        if len(blocks) == 1:  # two whole mat-vecs (numpy's u @ K is the faster K^T u)
            dot(K, v, out=u)
            divide(a, u, out=u)
            return dot(u, K, out=KtU)
        beta = 0.0  # the first block overwrites K^T u, the others add to it
        for blk, blk_t, a_blk, u_blk in orders[ii & 1]:
            dot(blk, v, out=u_blk)
            divide(a_blk, u_blk, out=u_blk)
            KtU = gemv(1.0, blk_t, u_blk, beta, KtU, overwrite_y=1)
            beta = 1.0
        return KtU

    def finite() -> bool:
        # POT's five cases: NaN or inf in u or v (a 0 in K^T u gives inf in v); the largest
        # entry is NaN or inf exactly then (a sum could overflow on finite entries near 1e308)
        return math.isfinite(float(peak(u))) and math.isfinite(float(peak(v)))

    saved = (u.copy(), v.copy(), KtU.copy())  # the last tested state
    saved_ii = -1
    err = 1.0
    numerical_error = converged = False
    ii = 0
    for ii in range(max_iter):
        KtU = step(ii, KtU)
        if ii % 10 and ii != max_iter - 1:
            continue
        if not finite():
            numerical_error = True
            u[:], v[:], KtU[:] = saved
            for jj in range(saved_ii + 1, ii + 1):  # replay to the first failing iteration
                prev = (u.copy(), v.copy())
                KtU = step(jj, KtU)
                if not finite():
                    u[:], v[:] = prev  # POT returns the scalings of the iteration before
                    ii = jj
                    break
            break
        saved[0][:], saved[1][:], saved[2][:] = u, v, KtU
        saved_ii = ii
        if ii % 10 == 0:
            err = float(np.linalg.norm(v * KtU - b))
            if err < tol:
                converged = True
                break
    # POT's u[:, None] * K * v[None, :], in place: K is not needed any more
    plan = np.multiply(u.reshape((-1, 1)), K, out=K)
    np.multiply(plan, v.reshape((1, -1)), out=plan)
    return SinkhornResult(plan, ii + 1, err, converged, numerical_error)


def _sinkhorn_scaling(
    a: Any, b: Any, M: Any, reg: float, max_iter: int, tol: float
) -> SinkhornResult:
    nx = backend_of(a, b, M)
    n, m = M.shape
    u = nx.ones(n, type_as=M) / n
    v = nx.ones(m, type_as=M) / m
    K = nx.exp(M / (-reg))
    Kp = (1 / a).reshape(-1, 1) * K
    KT = K.T
    KtU = KT @ u
    err = 1.0
    numerical_error = False
    converged = False
    ii = 0
    # 0/inf/NaN and the error are read on the host only every CHECK_EVERY iterations (one
    # sync each, none per iteration); on a failure the last checked scalings are returned,
    # where POT returns those of the previous iteration (the plan is unreliable either way)
    u_ok, v_ok = u, v
    for ii in range(max_iter):
        v = b / KtU
        u = 1.0 / (Kp @ v)
        KtU = KT @ u
        if ii % CHECK_EVERY == 0 or ii == max_iter - 1:
            # 0 in K^T u gives inf in v; the largest entries are inf/NaN exactly when some
            # entry is (a sum could overflow on finite entries near 1e308)
            if not (math.isfinite(float(nx.max(u))) and math.isfinite(float(nx.max(v)))):
                u, v = u_ok, v_ok
                numerical_error = True
                break
            u_ok, v_ok = u, v
            if ii % CHECK_EVERY == 0:
                err = float(nx.norm(v * KtU - b))
                if err < tol:
                    converged = True
                    break
    plan = u.reshape((-1, 1)) * K * v.reshape((1, -1))
    return SinkhornResult(plan, ii + 1, err, converged, numerical_error)


def _lse(x: Any, axis: int, nx: Any) -> Any:
    mx = nx.max(x, axis=axis, keepdims=True)
    return nx.log(nx.sum(nx.exp(x - mx), axis=axis)) + nx.squeeze(mx, axis=axis)


def sinkhorn_log(
    a: Any,
    b: Any,
    M: Any,
    reg: float,
    max_iter: int = 10_000,
    tol: float = 1e-9,
    warmstart: tuple[Any, Any] | None = None,
    tau: float = 1e3,
    absorb_every: int = 500,
    round_to_marginals: bool = True,
    warn: bool = True,
) -> SinkhornResult:
    r"""Log-domain (stabilised) Sinkhorn run to convergence of the column marginals.

    Keeps log potentials :math:`\alpha, \beta` and iterates scalings on the absorbed kernel
    :math:`\tilde K = \exp(-M/\varepsilon + \alpha \oplus \beta)`; whenever a scaling leaves
    :math:`[1/\tau, \tau]` (or every ``absorb_every`` iterations) it is absorbed into the
    potentials after one exact log-sum-exp update. This is the log-domain algorithm
    (Schmitzer 2019, POT's ``sinkhorn_stabilized``) at the cost of the scaling form; it never
    overflows. Stops when :math:`\sum_j |(\Gamma^\top 1)_j - b_j| < \mathrm{tol}` (checked every
    10 iterations); rows are exact.

    Parameters
    ----------
    a : array, shape (n,)
    b : array, shape (m,)
    M : array, shape (n, m)
    reg : float
    max_iter : int
        Cap on the scaling iterations.
    tol : float
        L1 column-marginal tolerance.
    warmstart : tuple of arrays (alpha (n,), beta (m,)), optional
        Log potentials of a previous solve (the outer InfoOT loop passes its last ones).
    tau : float
        Absorption threshold of the scalings.
    absorb_every : int
        Absorb at least this often (keeps the potentials accurate).
    round_to_marginals : bool
        Finish with the rounding of Altschuler, Weed & Rigollet (2017, Alg. 2), which moves the
        plan onto :math:`U(a, b)` exactly (to rounding) at an L1 cost of at most twice the
        remaining marginal error. Near-assignment problems (costs spanning hundreds of
        ``reg``) converge too slowly for the iterations alone to reach ``tol``.
    warn : bool
        Warn (:class:`SinkhornConvergenceWarning`) when ``max_iter`` is reached first.

    Returns
    -------
    SinkhornResult
        With ``potentials = (alpha, beta)``.

    Raises
    ------
    ValueError
        If ``M`` contains NaN/inf (POT would run to the cap and return NaN).
    FloatingPointError
        If an iterate becomes NaN/inf.
    """
    reg = _check_reg(reg)
    max_iter = check_int("max_iter", max_iter, low=1)
    tol = check_real("tol", tol, low=0.0)
    tau = check_real("tau", tau, low=1.0, inclusive=False)
    absorb_every = check_int("absorb_every", absorb_every, low=1)
    _check_problem(a, b, M)
    res = _sinkhorn_log(
        a, b, M, reg, max_iter, tol, warmstart, tau, absorb_every, round_to_marginals
    )
    if warn and not res.converged:
        _warn_unconverged("sinkhorn_log", res.n_iter, res.err, tol)
    return res


def _sinkhorn_log(
    a: Any, b: Any, M: Any, reg: float, max_iter: int, tol: float,
    warmstart: tuple[Any, Any] | None, tau: float, absorb_every: int, round_to_marginals: bool,
) -> SinkhornResult:  # fmt: skip
    nx = backend_of(a, b, M)
    n, m = M.shape
    logK = M / (-reg)
    loga, logb = nx.log(a), nx.log(b)
    alpha = nx.zeros(n, type_as=M) if warmstart is None else warmstart[0]
    err = math.inf
    converged = False
    ii = 0
    while ii < max_iter and not converged:
        # one exact log-domain update, then scalings on the absorbed kernel
        beta = logb - _lse(logK + alpha[:, None], 0, nx)
        alpha = loga - _lse(logK + beta[None, :], 1, nx)
        Kt = nx.exp(logK + alpha[:, None] + beta[None, :])
        KtT = Kt.T
        u = nx.ones(n, type_as=M)
        v = nx.ones(m, type_as=M)
        for jj in range(min(absorb_every, max_iter - ii)):
            v = b / (KtT @ u)
            u = a / (Kt @ v)
            ii += 1
            if jj % 10 == 0:
                err = float(nx.sum(nx.abs(v * (KtT @ u) - b)))
                if not math.isfinite(err):
                    raise FloatingPointError(
                        f"sinkhorn_log: NaN/inf in the iterates at iteration {ii} (reg={reg})"
                    )
                if err < tol:
                    converged = True
                    break
                if float(nx.max(u)) > tau or float(nx.max(v)) > tau:
                    break
                if float(nx.min(u)) < 1 / tau or float(nx.min(v)) < 1 / tau:
                    break
        alpha = alpha + nx.log(u)
        beta = beta + nx.log(v)
    plan = nx.exp(logK + alpha[:, None] + beta[None, :])
    if round_to_marginals:
        plan = round_to_polytope(plan, a, b)
    return SinkhornResult(plan, ii, err, converged, False, (alpha, beta))


def sinkhorn_warm(
    a: Any,
    b: Any,
    M: Any,
    reg: float,
    max_iter: int = 1000,
    tol: float = 1e-3,
    warmstart: tuple[np.ndarray, np.ndarray] | None = None,
    dtype: Any = np.float32,
    warn: bool = True,
) -> SinkhornResult:
    r"""Fast-mode Sinkhorn: warm-started, stabilised, single precision, stopped at a tolerance.

    The kernel is built from the previous dual potentials :math:`(f, g)`,
    :math:`\tilde K = \exp((f_i + g_j - M_{ij})/\varepsilon)`, then shifted so that every row and
    every column has a largest entry of exactly 1 (the shifts go into the potentials, which
    leaves the problem unchanged): no row or column underflows and nothing overflows, so the
    scaling iterations run in ``dtype`` (float32 by default: half the memory traffic of the
    one-pass loop). When a scaling leaves :math:`[1/\tau, \tau]` (:math:`\tau = 10^6` in float32)
    it is absorbed into the potentials and the kernel rebuilt (Schmitzer 2019): on a cost
    hundreds of ``reg`` wide most float32 kernel entries are 0, and the scalings of the rest
    would otherwise grow until they overflow. Stops when the L1 column error is below ``tol``
    (checked every 10 iterations). numpy only.

    Parameters
    ----------
    a : ndarray, shape (n,)
    b : ndarray, shape (m,)
    M : ndarray, shape (n, m)
    reg : float
    max_iter : int
    tol : float
        L1 column-marginal tolerance.
    warmstart : tuple of ndarrays (f (n,), g (m,)), optional
        Dual potentials of a previous solve (``SinkhornResult.potentials``).
    dtype : numpy dtype
        Precision of the iterations (float32 or float64).
    warn : bool
        Warn when ``max_iter`` is reached first.

    Returns
    -------
    SinkhornResult
        Plan in float64, potentials ``(f, g)`` in float64.
    """
    reg = _check_reg(reg)
    max_iter = check_int("max_iter", max_iter, low=1)
    tol = check_real("tol", tol, low=0.0)
    _check_problem(a, b, M)
    n, m = M.shape
    f = np.zeros(n) if warmstart is None else np.asarray(warmstart[0], dtype=np.float64)
    g = np.zeros(m) if warmstart is None else np.asarray(warmstart[1], dtype=np.float64)
    E = np.empty((n, m))
    K = np.empty((n, m), dtype=dtype)

    def build(f: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """K = exp((f + g - M) / reg) in place, every row and column max 1; shifted (f, g)."""
        np.add.outer(f, g, out=E)
        np.subtract(E, M, out=E)
        np.divide(E, reg, out=E)
        shift = E.max(axis=1)
        np.subtract(E, shift[:, None], out=E)
        f = f - reg * shift
        shift = E.max(axis=0)
        np.subtract(E, shift[None, :], out=E)
        g = g - reg * shift
        np.exp(E, out=E)
        K[...] = E
        return f, g

    f, g = build(f, g)
    a_, b_ = np.asarray(a, dtype=dtype), np.asarray(b, dtype=dtype)
    gemv = get_blas_funcs("gemv", (K,))
    n_blocks = max(1, -(-n * m * K.itemsize // _FAST_BLOCK_BYTES))
    rows = -(-n // n_blocks)
    u, v = np.ones(n, dtype=dtype), np.ones(m, dtype=dtype)
    blocks = [(K[s : s + rows], K[s : s + rows].T, a_[s : s + rows], u[s : s + rows])
              for s in range(0, n, rows)]  # fmt: skip
    orders = (blocks, blocks[::-1])
    KtU = K.T @ u
    # scalings leaving [1/tau, tau] are absorbed into the potentials and the kernel rebuilt
    # (Schmitzer 2019): in float32 a kernel entry below ~1e-38 is 0, and on a badly scaled cost
    # the scalings of the remaining support would otherwise grow until they overflow
    tau = 1e6 if np.dtype(dtype).itemsize < 8 else 1e50
    err, converged, it = math.inf, False, 0
    for it in range(1, max_iter + 1):
        np.divide(b_, KtU, out=v)
        KtU.fill(0.0)
        for blk, blk_t, a_blk, u_blk in orders[it & 1]:
            np.dot(blk, v, out=u_blk)
            np.divide(a_blk, u_blk, out=u_blk)
            KtU = gemv(1.0, blk_t, u_blk, 1.0, KtU, overwrite_y=1)
        if it % 10 == 0 or it == max_iter:
            err = float(np.abs(v * KtU - b_).sum())
            if not math.isfinite(err):
                raise FloatingPointError(
                    f"sinkhorn_warm: NaN/inf in the iterates at iteration {it} (reg={reg})"
                )
            if err < tol:
                converged = True
                break
            low = min(float(u.min()), float(v.min()))
            if it < max_iter and (max(float(u.max()), float(v.max())) > tau or low < 1 / tau):
                f, g = build(f + reg * np.log(u), g + reg * np.log(v))
                u.fill(1.0)
                KtU = np.dot(u, K, out=KtU)
    plan = np.multiply(u[:, None], K, dtype=np.float64)
    plan *= v[None, :]
    if warn and not converged:
        _warn_unconverged("sinkhorn_warm", it, err, tol)
    pots = (f + reg * np.log(u.astype(np.float64)), g + reg * np.log(v.astype(np.float64)))
    return SinkhornResult(plan, it, err, converged, False, pots)


def round_to_polytope(P: Any, a: Any, b: Any) -> Any:
    r"""Nearest-feasible rounding of a positive plan onto :math:`U(a, b)`.

    Altschuler, Weed & Rigollet (NeurIPS 2017), Algorithm 2: scale rows down to at most
    :math:`a`, columns down to at most :math:`b`, then add the rank-one correction
    :math:`e_a e_b^\top / \|e_a\|_1`. The result is non-negative with exact marginals and
    :math:`\|P' - P\|_1 \le 2(\|P1 - a\|_1 + \|P^\top 1 - b\|_1)`.

    Parameters
    ----------
    P : array, shape (n, m)
    a : array, shape (n,)
    b : array, shape (m,)

    Returns
    -------
    P_rounded : array, shape (n, m)
    """
    nx = backend_of(P, a, b)
    x = nx.minimum(a / nx.sum(P, axis=1), nx.ones(a.shape, type_as=P))
    P = x[:, None] * P
    y = nx.minimum(b / nx.sum(P, axis=0), nx.ones(b.shape, type_as=P))
    P = P * y[None, :]
    # >= 0 in exact arithmetic; clip the rounding noise so that the plan stays non-negative
    ea = nx.maximum(a - nx.sum(P, axis=1), 0.0)
    eb = nx.maximum(b - nx.sum(P, axis=0), 0.0)
    total = float(nx.sum(nx.abs(ea)))
    if total > 0:
        P = P + ea[:, None] * eb[None, :] / total
    return P
