"""The built-in example for ``crossent report``: softmax regression on scikit-learn's digits.

A linear softmax model is trained with crossent's own loss and gradient
(``softmax_cross_entropy`` and ``softmax_cross_entropy_grad``, chained through the
linear layer) by L-BFGS, on a fixed split of the 1797 bundled 8x8 digit images:
60 % train, 20 % calibration (which picks the L2 penalty by its NLL), 20 % test.  The
report is on the test split's logits.  Everything is seeded, so the report is the same
on every run and machine up to floating-point rounding.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

import crossent

from .._hints import install_command
from ._dataset import Dataset, SourceError

__all__ = ["SEED", "builtin_dataset", "train_softmax_regression"]

SEED = 20261123
_PENALTIES = (1e-4, 1e-3, 1e-2, 1e-1)


def train_softmax_regression(
    features: Any, labels: Any, *, classes: int, penalty: float
) -> tuple[Any, Any]:
    """Weights ``(features, classes)`` and bias minimising mean CE + penalty/2 * ||W||^2."""
    from scipy import optimize  # lazily: every crossent command imports this module

    d = features.shape[1]

    def objective(params: Any) -> tuple[float, Any]:
        weights, bias = params[: d * classes].reshape(d, classes), params[d * classes :]
        logits = features @ weights + bias
        loss = float(crossent.softmax_cross_entropy(logits, labels))
        grad_logits = crossent.softmax_cross_entropy_grad(logits, labels)  # mean reduction
        grad_w = features.T @ grad_logits + penalty * weights
        value = loss + 0.5 * penalty * float(np.sum(weights * weights))
        return value, np.concatenate([grad_w.ravel(), grad_logits.sum(axis=0)])

    start = np.zeros(d * classes + classes)
    result = optimize.minimize(
        objective, start, jac=True, method="L-BFGS-B", options={"maxiter": 2000}
    )
    return result.x[: d * classes].reshape(d, classes), result.x[d * classes :]


def _digits() -> tuple[Any, Any]:
    """scikit-learn's bundled digits: features ``(1797, 64)`` and labels, as
    ``load_digits()`` gives them (``data``, ``target``).

    Read from the package's ``datasets/data/digits.csv.gz`` as ``load_digits`` reads it
    (``np.loadtxt``, the last column the label), found without importing scikit-learn:
    ``import sklearn.datasets`` brings in SciPy's statistics and pandas, about 0.7 s of
    CPU of a 3.4 s built-in report.  ``load_digits`` itself where the file is not there.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise SourceError(
            "the built-in example needs scikit-learn (its bundled digits data): "
            f"{install_command('cli')}, or give a file to report on"
        )
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():  # another layout: scikit-learn's own reader
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.data, digits.target
    with gzip.open(path, "rt", encoding="utf-8") as file:
        data = np.loadtxt(file, delimiter=",")
    return data[:, :-1], data[:, -1].astype(int)


def builtin_dataset() -> Dataset:
    """Test-split logits of the digits softmax regression, as a :class:`Dataset`."""
    data, target = _digits()
    features, labels = data.astype(np.float64), target.astype(np.int64)
    order = np.random.default_rng(SEED).permutation(labels.size)
    train, calibration, test = np.split(order, [int(0.6 * labels.size), int(0.8 * labels.size)])
    mean, scale = features[train].mean(axis=0), features[train].std(axis=0) + 1.0
    features = (features - mean) / scale
    candidates = []
    for penalty in _PENALTIES:
        weights, bias = train_softmax_regression(
            features[train], labels[train], classes=10, penalty=penalty
        )
        nll = crossent.negative_log_likelihood(
            features[calibration] @ weights + bias, labels[calibration], form="logits"
        )
        candidates.append((nll, penalty, weights, bias))
    _, _, weights, bias = min(candidates, key=lambda c: (c[0], c[1]))
    logits = features[test] @ weights + bias
    return Dataset(
        values=logits,
        labels=labels[test],
        form="logits",
        class_names=[str(k) for k in range(10)],
        source="built-in example: softmax regression on scikit-learn's digits (test split)",
        builtin=True,
    )
