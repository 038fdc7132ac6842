r"""float64 probability targets' gradient of ``crossent.torch.cross_entropy`` against mpmath.

Issue 13 follow-up (float64 through ``crossent::softmax_ce_probs_v3``): 64 cases (rows of
2-50 classes at scales 1-30, a third peaked by 10-80; one-hot, random and near-softmax
targets; 7 option sets) and the hard rows ``[0, -80]``, ``[40, -40]``, ``[5, 0]``; each
entry's error in ulps of itself and in "conditioned ulps" (ulps of :math:`(|c\,p_c| +
v_c)\operatorname{sech}^2/T`, the size of the terms that cancel), against a 120-digit
mpmath oracle. Run under each tree, then compare::

    PYTHONPATH=/tmp/main_tree/src python benchmarks/check_torch_float64_targets.py run main.json
    PYTHONPATH=src python benchmarks/check_torch_float64_targets.py run this.json
    python benchmarks/check_torch_float64_targets.py compare main.json this.json

(The first tree's conditioned errors beside the second's: quantiles, and the entries
where one is more than twice the other's plus 2.) The relative ulps are arbitrary on
both trees where targets near the softmax cancel each entry past the rounding of
:math:`A = \sum_c v_c` (the input's own conditioning); the conditioned measure is the
one to read.
"""

import json
import sys

import mpmath
import numpy as np


def cases():
    g = np.random.default_rng(0)
    out = []
    for n_case in range(60):
        C = int(g.choice([2, 3, 7, 50]))
        N = 4
        scale = float(g.choice([1.0, 5.0, 30.0]))
        z = g.standard_normal((N, C)) * scale
        if n_case % 3 == 0:
            z[:, 0] += float(g.choice([10, 40, 80]))  # peaked
        kind = n_case % 4
        if kind == 0:
            t = np.zeros((N, C))
            t[np.arange(N), z.argmax(1)] = 1
        elif kind == 1:
            t = np.exp(g.standard_normal((N, C)) * 2)
            t /= t.sum(1, keepdims=True)
        elif kind == 2:
            t = np.zeros((N, C))
            t[np.arange(N), g.integers(0, C, N)] = 1
        else:
            e = np.exp(z - z.max(1, keepdims=True))
            t = e / e.sum(1, keepdims=True)  # t ~ p
        opts = [
            {},
            {"temperature": 0.7},
            {"z_loss": 1e-3},
            {"label_smoothing": 0.1},
            {"soft_cap": 20.0},
            {"weight": True},
            {"temperature": 2.0, "z_loss": 1e-4},
        ][n_case % 7]
        out.append((z, t, opts))
    # the hard rows of the label-entry test
    for zz, tt in (
        [[0.0, -80.0], [1.0, 0.0]],
        [[40.0, -40.0], [1.0, 0.0]],
        [[5.0, 0.0], [1.0, 0.0]],
    ):
        for opts in ({}, {"temperature": 0.5}, {"z_loss": 1e-4}):
            out.append((np.array([zz]), np.array([tt]), opts))
    return out


def oracle(z, t, w, opts):
    eps = mpmath.mpf(opts.get("label_smoothing", 0.0))
    lam = mpmath.mpf(opts.get("z_loss", 0.0))
    T = mpmath.mpf(opts.get("temperature", 1.0))
    s = opts.get("soft_cap")
    N, C = z.shape
    g = np.empty((N, C))
    size = np.empty((N, C))
    for i in range(N):
        zs = [mpmath.mpf(float(x)) for x in z[i]]
        cap = [(mpmath.mpf(s) * mpmath.tanh(x / s) if s else x) for x in zs]
        zp = [x / T for x in cap]
        ws = [mpmath.mpf(float(x)) for x in w] if w is not None else [mpmath.mpf(1)] * C
        ts = [mpmath.mpf(float(x)) for x in t[i]]
        tt = [(1 - eps) * x + eps / C for x in ts]
        v = [a * b for a, b in zip(ws, tt, strict=True)]
        A = mpmath.fsum(v)
        omega = mpmath.fsum(a * b for a, b in zip(ws, ts, strict=True)) if w is not None else 1
        lse = mpmath.log(mpmath.fsum(mpmath.exp(x) for x in zp))
        c = A + 2 * lam * omega * lse
        for k in range(C):
            p = mpmath.exp(zp[k] - lse)
            slope = (1 / mpmath.cosh(zs[k] / s) ** 2) if s else 1
            g[i, k] = float((c * p - v[k]) * slope / T)
            size[i, k] = float((abs(c * p) + abs(v[k])) * slope / T)
    return g, size


def ulps(got, want):
    tiny = np.finfo(np.float64).tiny
    return np.abs(got - want) / np.maximum(np.abs(want) * np.finfo(np.float64).eps, tiny * 2.0**-52)


def ours(z, t, w, opts):
    import torch

    import crossent.torch as ct

    zt = torch.tensor(z, requires_grad=True)
    kw = {k: v for k, v in opts.items() if k != "weight"}
    ct.cross_entropy(
        zt, torch.tensor(t), weight=None if w is None else torch.tensor(w), reduction="sum", **kw
    ).backward()
    return zt.grad.numpy()


def run(path):
    res = []
    with mpmath.workdps(120):
        for z, t, opts in cases():
            w = np.linspace(0.5, 2.0, z.shape[1]) if opts.get("weight") else None
            want, size = oracle(z, t, w, opts)
            got = ours(z, t, w, opts)
            eps = np.finfo(np.float64).eps
            res.append([ulps(got, want).tolist(), (np.abs(got - want) / (size * eps)).tolist()])
    with open(path, "w") as f:
        json.dump(res, f)
    for j, name in enumerate(["ulps", "conditioned ulps"]):
        flat = np.concatenate([np.ravel(r[j]) for r in res])
        print(name, "max", flat.max(), "mean", flat.mean(), "p99", np.quantile(flat, 0.99))


def compare(first, second):
    with open(first) as f:
        a = [r[1] for r in json.load(f)]
    with open(second) as f:
        b = [r[1] for r in json.load(f)]
    fa = np.concatenate([np.ravel(x) for x in a])
    fb = np.concatenate([np.ravel(x) for x in b])
    print("conditioned ulps: quantile, first, second")
    for q in (0.5, 0.9, 0.99, 0.999, 1.0):
        print(q, np.quantile(fa, q), np.quantile(fb, q))
    print("mean", fa.mean(), fb.mean())
    better = int((fb < fa / 2 - 2).sum())
    worse = int((fb > fa * 2 + 2).sum())
    print(f"second better (by 2x+2): {better}, worse: {worse}, of {fa.size} entries")


if __name__ == "__main__":
    if sys.argv[1] == "run":
        run(sys.argv[2])
    else:
        compare(sys.argv[2], sys.argv[3])
