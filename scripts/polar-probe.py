#!/usr/bin/env python3
"""Probe: polar codes with successive-cancellation (SC) decoding as a Slepian-Wolf
reconciliation code for the BSC, to compare with the LDPC codes of host/src/distill/ldpc.

Alice sends the frozen part of u = x G_N (G_N = F^{(x)n}, its own inverse over GF(2)); Bob
runs SC decoding of u from his noisy copy y with the frozen values known. The frozen set is
the K positions with the largest genie-aided conditional entropy H(U_i | Y, U^{i-1}),
estimated by Monte Carlo as E[log2(1 + exp(-s_i L_i))] (exact LLRs, sum checked against
N h(p)); K = f N h(p) is the leak. Prints the frame error rate per efficiency f.

    python3 scripts/polar-probe.py LOG2_N QBER SAMPLES FRAMES F1,F2,...
    python3 scripts/polar-probe.py 16 0.01 30 16 1.1,1.15,1.2,1.3

Measured (2026-12-03): N = 2^16, QBER 1 %: 16/16 frames lost at every f up to 1.3; QBER 5 %:
13/16 lost at f = 1.2. The LDPC codes decode half the frames at f = 1.15 (1 %) and 1.085
(5 %) at n = 32768, so SC-decoded polar codes of these lengths are no route to f <= 1.10.
Pure numpy (recursive SC, about 1.5 s per frame at N = 2^16); a design-time tool, not run by
the build or the tests.
"""
import sys
import time

import numpy as np

sys.setrecursionlimit(10000)

def boxplus(a, b):
    # exact: 2 atanh(tanh(a/2) tanh(b/2)), stable form
    s = np.sign(a) * np.sign(b)
    m = np.minimum(np.abs(a), np.abs(b))
    return s * m + np.log1p(np.exp(-np.abs(a + b))) - np.log1p(np.exp(-np.abs(a - b)))

def encode(u):
    x = u.copy()
    n = len(x); h = 1
    while h < n:
        x = x.reshape(-1, 2, h)
        x[:, 0, :] ^= x[:, 1, :]
        x = x.reshape(n)
        h *= 2
    return x

def sc(L, frozen, fval, out_u, off, genie=None, ent=None):
    """Returns re-encoded x-hat of this subtree; fills out_u[off:off+n]."""
    n = len(L)
    if n == 1:
        i = off
        if frozen[i]:
            b = fval[i]
        else:
            b = 1 if L[0] < 0 else 0
        if ent is not None:
            s = 1.0 - 2.0 * float(genie[i])
            ent[i] += np.logaddexp(0.0, -s * L[0]) / np.log(2)
            b = genie[i]
        out_u[i] = b
        return np.array([b], dtype=np.uint8)
    h = n // 2
    L1, L2 = L[:h], L[h:]
    a = sc(boxplus(L1, L2), frozen, fval, out_u, off, genie, ent)
    g = L2 + (1 - 2 * a.astype(np.float64)) * L1
    b = sc(g, frozen, fval, out_u, off + h, genie, ent)
    return np.concatenate([a ^ b, b])

def main():
    n = int(sys.argv[1]); p = float(sys.argv[2]); samples = int(sys.argv[3]); frames = int(sys.argv[4])
    fs = [float(x) for x in sys.argv[5].split(',')]
    N = 1 << n
    rng = np.random.default_rng(1)
    Lc = np.log((1 - p) / p)
    h = -p * np.log2(p) - (1 - p) * np.log2(1 - p)
    # genie-aided conditional entropies
    ent = np.zeros(N)
    frozen = np.ones(N, dtype=bool)
    t = time.time()
    for _ in range(samples):
        x = rng.integers(0, 2, N, dtype=np.uint8)
        e = (rng.random(N) < p).astype(np.uint8)
        y = x ^ e
        u = encode(x)
        L = (1 - 2 * y.astype(np.float64)) * Lc
        out = np.zeros(N, dtype=np.uint8)
        sc(L, frozen, u, out, 0, genie=u, ent=ent)
    ent /= samples
    print(f"N=2^{n} p={p}: sum of conditional entropies {ent.sum():.1f} vs N h {N*h:.1f} ({time.time()-t:.1f}s)", flush=True)
    order = np.argsort(-ent)  # most uncertain first
    for f in fs:
        K = int(np.ceil(f * N * h))
        fr = np.zeros(N, dtype=bool); fr[order[:K]] = True
        fails = 0
        for _ in range(frames):
            x = rng.integers(0, 2, N, dtype=np.uint8)
            e = (rng.random(N) < p).astype(np.uint8)
            u = encode(x)
            L = (1 - 2 * (x ^ e).astype(np.float64)) * Lc
            out = np.zeros(N, dtype=np.uint8)
            sc(L, fr, u, out, 0)
            fails += int(np.any(out != u))
        print(f"  f={f}: FER {fails}/{frames}", flush=True)

main()
