#!/usr/bin/env python3
"""Threshold analysis of the LDPC reconciliation code family (host/src/distill/ldpc/code.rs).

EXIT-chart analysis of sum-product decoding on the binary symmetric channel: the variable
node is exact for the BSC's two-point channel LLR plus a Gaussian a-priori message; the
check node uses the Gaussian/duality approximation I_E,c = 1 - J(sqrt(dc - 1) J^-1(1 - I_A)).
For each concentrated check degree dc, a linear program chooses the column-degree edge
fractions lambda_d that maximize the rate while the decoding tunnel stays open (margin 0.001
in mutual information); the degree-2 fraction is either exactly the staircase's (m - 1
degree-2 columns, lambda_2 = 2/dc: the construction code.rs uses) or free (more degree-2
columns, which then close cycles among themselves). Prints, per QBER and maximum column
degree, the best threshold efficiency f = (1 - R)/h(QBER) and its profile (fractions of all
columns, staircase included). A code of finite length needs a few per cent more than its
ensemble's threshold, and the blind rounds add their step on top.

Caveat, measured: the profiles this prints for QBER 1 % (mostly degree 3 plus a few columns
of degree 30-100) decoded no frame at n = 16384 or 65536 at f = 1.10-1.20, in float as in
fixed point (`decoder::float_diag::diag_float`), while the empirical profiles of code.rs decode
half the frames at f = 1.15; the Gaussian approximation is not trustworthy for the BSC at high
rate, so code.rs's profiles come from decoding experiments (`decoder::profile_search`).

Needs numpy and scipy (a design-time tool, not run by the build or the tests):
    pip install numpy scipy && python3 scripts/ldpc-design.py
"""
import numpy as np
from scipy.optimize import linprog

# Gauss-Hermite nodes for E[g(N(m, 2m))]
GH_X, GH_W = np.polynomial.hermite.hermgauss(80)


def T_gauss(shift, mu):
    """1 - E[log2(1 + exp(-Y))], Y = shift + N(mu, 2 mu) (vectorized over mu)."""
    mu = np.atleast_1d(mu).astype(float)
    out = np.empty_like(mu)
    for i, m in enumerate(mu):
        if m < 1e-9:
            out[i] = 1 - np.logaddexp(0, -shift) / np.log(2)
            continue
        y = shift + m + np.sqrt(4 * m) * GH_X
        out[i] = 1 - np.sum(GH_W * np.logaddexp(0, -y)) / np.sqrt(np.pi) / np.log(2)
    return out


# J(sigma) with mu = sigma^2 / 2, tabulated for inversion
MU_GRID = np.concatenate([[0.0], np.logspace(-4, 3, 3000)])
J_GRID = T_gauss(0.0, MU_GRID)


def J_of_mu(mu):
    return np.interp(mu, MU_GRID, J_GRID)


def mu_of_J(i):
    return np.interp(np.clip(i, 0, J_GRID[-1]), J_GRID, MU_GRID)


def check_exit(i_in, dc_list, dc_w):
    """Extrinsic MI out of the checks given MI in (edge-perspective mixture over dc)."""
    out = 0.0
    mu = mu_of_J(1 - i_in)
    for dc, w in zip(dc_list, dc_w):
        out = out + w * (1 - J_of_mu((dc - 1) * mu))
    return out


def var_exit(d, i_in, L, p):
    mu = (d - 1) * mu_of_J(i_in)
    return (1 - p) * T_gauss(L, mu) + p * T_gauss(-L, mu)


def design(p, dc_avg, degrees, margin, extra_degree2):
    """Best rate for check degree dc_avg: returns (f, rate, {degree: edge fraction})."""
    h = -p * np.log2(p) - (1 - p) * np.log2(1 - p)
    L = np.log((1 - p) / p)
    lo = int(np.floor(dc_avg))
    frac_hi = dc_avg - lo
    dcs = [lo, lo + 1]
    rho = np.array([1 - frac_hi, frac_hi]) * np.array(dcs) / dc_avg  # edge perspective
    xs = np.linspace(0.0, 0.999, 50)  # MI into the checks
    ic = check_exit(xs, dcs, rho)  # MI into the variables
    degs = [2] + degrees
    # Tunnel open: sum_d lambda_d I_E,v(d) >= x + margin (1 - x) at every x.
    A = [[-var_exit(d, ic[j], L, p)[0] for d in degs] for j in range(len(xs))]
    b = [-(x + margin * (1 - x)) for x in xs]
    lam2 = 2.0 / dc_avg  # the staircase: m - 1 degree-2 columns
    bounds = [(lam2, 1.0 if extra_degree2 else lam2)] + [(0.0, 1.0)] * len(degrees)
    res = linprog([-1.0 / d for d in degs], A_ub=A, b_ub=b, A_eq=[[1.0] * len(degs)], b_eq=[1.0], bounds=bounds, method="highs")
    if not res.success:
        return None
    lam = res.x
    R = 1 - sum(r / d for r, d in zip(rho, dcs)) / sum(l / d for l, d in zip(lam, degs))
    return (1 - R) / h, R, dict(zip(degs, lam))


def main():
    margin = 0.001
    for extra2 in (False, True):
        for maxdeg in (30, 100):
            degrees = [d for d in (3, 4, 5, 6, 7, 8, 10, 12, 15, 20, 25, 30, 40, 60, 100) if d <= maxdeg]
            for p in (0.01, 0.02, 0.03, 0.05):
                best = None
                for dc in np.arange(8.0, 120.0, 1.0):
                    r = design(p, dc, degrees, margin, extra2)
                    if r and (best is None or r[0] < best[0]):
                        best = (r[0], dc, r[2])
                f, dc, lam = best
                node = {d: l / d for d, l in lam.items() if l > 1e-4}
                tot = sum(node.values())
                prof = ", ".join(f"{d}: {x / tot:.3f}" for d, x in node.items())
                print(f"degree-2 {'free     ' if extra2 else 'staircase'} max degree {maxdeg:3}  QBER {p:.2f}: "
                      f"threshold f = {f:.3f} (check degree {dc:.0f}; column fractions {prof})")


if __name__ == "__main__":
    main()
