"""The calls pinned by ``test_issue13_small_families.py`` (issue 13, "Small inputs").

Every loss family other than softmax cross-entropy, with its gradient, on small and
medium inputs: shapes (10,), (1, 10), (8, 10) and (3, 4, 10) with the class axis first,
in the middle and last; class weights, ``ignore_index``, every reduction, ``base`` and
the families' own options; float64, float32 and float16 logits; saturated and infinite
entries. :func:`cases` lists ``(key, call)``; :func:`bad_cases` the calls that raise.

The expected results (``data/issue13_small_families.json``) were computed with the code
of ``main`` before the per-call work on these families, by running this module as a
script with that tree first on ``PYTHONPATH``::

    PYTHONPATH=/path/to/main/src python tests/losses/issue13_small_family_cases.py OUT.json

Each result is stored as its type, dtype, shape and a SHA-256 of its bytes (so equal
fingerprints mean equal bits, NaN and -0.0 included), and each error as its type and
message.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

import crossent

Call = Callable[[], Any]


def _inputs() -> dict[str, Any]:
    rng = np.random.default_rng(20261130)
    x: dict[str, Any] = {}
    for name, shape in (("a", (10,)), ("b", (1, 10)), ("c", (8, 10)), ("d", (3, 4, 10))):
        x[f"z_{name}"] = rng.standard_normal(shape) * 3
        x[f"y_{name}"] = rng.integers(0, 10, size=shape[:-1])
        x[f"t_{name}"] = rng.dirichlet(np.ones(10), size=shape[:-1])
        x[f"v_{name}"] = rng.standard_normal(shape) * 2  # teacher logits
    x["y_a"] = np.array(rng.integers(0, 10))  # a 0-d label for one row
    x["z_sat"] = np.array([[80.0, 0.0, -3.0, 1.0], [-1e300, 5.0, 5.0, -np.inf]])
    x["y_sat"] = np.array([0, 1])
    x["w"] = rng.uniform(0.0, 2.0, size=10)
    x["w"][3] = 0.0
    # (3, 4, 10) moved so that the class axis is first or in the middle
    x["z_d0"] = np.moveaxis(x["z_d"], -1, 0).copy()
    x["z_d1"] = np.moveaxis(x["z_d"], -1, 1).copy()
    x["v_d0"] = np.moveaxis(x["v_d"], -1, 0).copy()
    x["t_d1"] = np.moveaxis(x["t_d"], -1, 1).copy()
    # sigmoid inputs: elementwise
    x["s_a"] = rng.standard_normal(10) * 3
    x["s_c"] = rng.standard_normal((8, 10)) * 3
    x["s_sat"] = np.array([40.0, -40.0, np.inf, -np.inf, 0.0, 1e4])
    x["bt_a"] = (rng.uniform(size=10) < 0.5).astype(np.float64)
    x["bt_c"] = rng.uniform(size=(8, 10))
    x["bt_sat"] = np.array([1.0, 0.0, 0.0, 1.0, 0.5, 1.0])
    # hard targets against every kind of logit, signed zeros included
    x["s_hard"] = np.array(
        [40.0, -40.0, np.inf, -np.inf, np.inf, -np.inf, 0.0, -0.0, 1e4, -1e4, -800.0, 800.0]
    )
    x["bt_hard"] = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, -0.0, 1.0, 0.0, 1.0, 0.0])
    x["s_hard32"] = x["s_hard"].astype(np.float32)
    x["bt_hard32"] = x["bt_hard"].astype(np.float32)
    x["bw_c"] = rng.uniform(0.0, 2.0, size=10)
    x["bpw_c"] = rng.uniform(0.5, 3.0, size=(8, 1))
    return x


_LABELLED = (
    ("focal", crossent.softmax_focal_loss, crossent.softmax_focal_loss_grad),
    ("poly1", crossent.poly1_cross_entropy, crossent.poly1_cross_entropy_grad),
    ("hinge", crossent.multiclass_hinge_loss, crossent.multiclass_hinge_loss_grad),
)

_OWN_OPTIONS: dict[str, list[dict[str, Any]]] = {
    "focal": [{}, {"gamma": 0.0}, {"gamma": 0.5}, {"gamma": 3}],
    "poly1": [{}, {"epsilon": 0.0}, {"epsilon": -1.0}, {"epsilon": 2.5}],
    "hinge": [
        {},
        {"margin": 0.0},
        {"variant": "weston_watkins"},
        {"margin": 2.5, "variant": "weston_watkins"},
    ],
    "targets": [
        {},
        {"label_smoothing": 0.1},
        {"temperature": 0.5},
        {"z_loss": 1e-2},
        {"soft_cap": 3.0},
    ],
    "distill": [
        {},
        {"temperature": 2.0},
        {"direction": "reverse"},
        {"temperature": 0.5, "direction": "reverse"},
    ],
    "sigmoid": [{}, {"label_smoothing": 0.1}],
    "sigmoid_focal": [{}, {"gamma": 0.0}, {"gamma": 0.5, "alpha": 0.25}, {"alpha": 1.0}],
}


def _labelled_cases(x: dict[str, Any]) -> list[tuple[str, Call]]:
    out: list[tuple[str, Call]] = []
    for family, loss, grad in _LABELLED:
        shared: list[tuple[str, str, str, dict[str, Any]]] = [
            ("a", "z_a", "y_a", {}),
            ("b", "z_b", "y_b", {}),
            ("c", "z_c", "y_c", {}),
            ("d", "z_d", "y_d", {}),
            ("d0", "z_d0", "y_d", {"axis": 0}),
            ("d1", "z_d1", "y_d", {"axis": 1}),
            ("d1neg", "z_d1", "y_d", {"axis": -2}),
            ("sat", "z_sat", "y_sat", {}),
            ("c_ign", "z_c", "y_c", {"ignore_index": int(x["y_c"][2])}),
            ("c_ign_none", "z_c", "y_c", {"ignore_index": -100}),
            ("b_ign_all", "z_b", "y_b", {"ignore_index": int(x["y_b"][0])}),
        ]
        if family != "hinge":
            shared += [
                ("c_w", "z_c", "y_c", {"weight": "w"}),
                ("c_w_ign", "z_c", "y_c", {"weight": "w", "ignore_index": int(x["y_c"][0])}),
                ("d_w", "z_d", "y_d", {"weight": "w"}),
            ]
        for tag, zk, yk, kw in shared:
            for red in ("mean", "sum", "none", "parts"):
                if red != "mean" and tag not in ("b", "c", "d1", "c_ign", "c_w", "b_ign_all"):
                    continue
                for k, own in enumerate(_OWN_OPTIONS[family]):
                    if k and tag not in ("b", "c", "d1", "sat", "c_w", "c_ign"):
                        continue
                    for validate in (True, False):
                        if not validate and (red != "mean" or k):
                            continue
                        kwargs = {**{a: (x[v] if a == "weight" else v) for a, v in kw.items()}}
                        kwargs.update(own, reduction=red, validate=validate)
                        for fn in (loss, grad):
                            key = f"{fn.__name__}|{tag}|{red}|{k}|{validate}"
                            out.append((key, _bind(fn, (x[zk], x[yk]), kwargs)))
        for dtype in ("float32", "float16"):
            for fn in (loss, grad):
                out.append(
                    (
                        f"{fn.__name__}|c_{dtype}",
                        _bind(fn, (x["z_c"].astype(dtype), x["y_c"]), {}),
                    )
                )
        if family == "focal":  # the one of the three with ``base``
            for fn in (loss, grad):
                out.append((f"{fn.__name__}|c_bits", _bind(fn, (x["z_c"], x["y_c"]), {"base": 2})))
        for fn in (loss, grad):
            out.append(
                (f"{fn.__name__}|list", _bind(fn, (x["z_b"].tolist(), [int(x["y_b"][0])]), {}))
            )
            # unchecked labels that are no class: the labels' InputError (labelsafe: they
            # were read as NumPy indexes them, -1 the last class, or NumPy's IndexError)
            for label in (-1, -10, 10):
                for tag, zk in (("b", "z_b"), ("a", "z_a")):
                    labels = np.array([label]) if tag == "b" else np.array(label)
                    key = f"{fn.__name__}|{tag}_unchecked_label_{label}"
                    out.append((key, _bind(fn, (x[zk], labels), {"validate": False})))
            y_d = x["y_d"].copy()
            y_d[1, 2] = 10
            key = f"{fn.__name__}|d_unchecked_label_10"
            out.append((key, _bind(fn, (x["z_d"], y_d), {"validate": False})))
            y_c = x["y_c"].copy()
            y_c[3] = -2
            out.append(
                (
                    f"{fn.__name__}|c_unchecked_label",
                    _bind(fn, (x["z_c"], y_c), {"validate": False}),
                )
            )
    return out


def _target_cases(x: dict[str, Any]) -> list[tuple[str, Call]]:
    out: list[tuple[str, Call]] = []
    pairs = (
        (
            "targets",
            crossent.softmax_cross_entropy_with_targets,
            crossent.softmax_cross_entropy_with_targets_grad,
        ),
        ("distill", crossent.distillation_loss, crossent.distillation_loss_grad),
    )
    for family, loss, grad in pairs:
        other = "t" if family == "targets" else "v"
        shared: list[tuple[str, str, str, dict[str, Any]]] = [
            ("a", "z_a", f"{other}_a", {}),
            ("b", "z_b", f"{other}_b", {}),
            ("c", "z_c", f"{other}_c", {}),
            ("d", "z_d", f"{other}_d", {}),
            ("d_base", "z_d", f"{other}_d", {"base": 2.0}),
        ]
        if family == "targets":
            shared += [
                ("d1", "z_d1", "t_d1", {"axis": 1}),
                ("c_w", "z_c", "t_c", {"weight": "w"}),
            ]
        else:
            shared += [
                ("d0", "z_d0", "v_d0", {"axis": 0}),
                ("c_probs", "z_c", "t_c", {"teacher_form": "probs"}),
                ("c_logp", "z_c", "lt_c", {"teacher_form": "log_probs"}),
            ]
        for tag, zk, tk, kw in shared:
            for red in ("mean", "sum", "none", "parts"):
                if red != "mean" and tag not in ("b", "c", "c_w", "d0", "d1"):
                    continue
                for k, own in enumerate(_OWN_OPTIONS[family]):
                    if k and tag not in ("b", "c", "c_w", "c_probs", "d1", "d0"):
                        continue
                    for validate in (True, False):
                        if not validate and (red != "mean" or k):
                            continue
                        kwargs = {a: (x[v] if a == "weight" else v) for a, v in kw.items()}
                        kwargs.update(own, reduction=red, validate=validate)
                        for fn in (loss, grad):
                            key = f"{fn.__name__}|{tag}|{red}|{k}|{validate}"
                            other_arr = np.log(x["t_c"]) if tk == "lt_c" else x[tk]
                            out.append((key, _bind(fn, (x[zk], other_arr), kwargs)))
        for fn in (loss, grad):
            out.append(
                (
                    f"{fn.__name__}|c_float32",
                    _bind(fn, (x["z_c"].astype("float32"), x[f"{other}_c"]), {}),
                )
            )
    return out


def _sigmoid_cases(x: dict[str, Any]) -> list[tuple[str, Call]]:
    out: list[tuple[str, Call]] = []
    pairs = (
        ("sigmoid", crossent.sigmoid_cross_entropy, crossent.sigmoid_cross_entropy_grad),
        ("sigmoid_focal", crossent.sigmoid_focal_loss, crossent.sigmoid_focal_loss_grad),
    )
    for family, loss, grad in pairs:
        shared: list[tuple[str, str, str, dict[str, Any]]] = [
            ("a", "s_a", "bt_a", {}),
            ("c", "s_c", "bt_c", {}),
            ("sat", "s_sat", "bt_sat", {}),
            ("hard", "s_hard", "bt_hard", {}),
            ("hard32", "s_hard32", "bt_hard32", {}),
            ("c_w", "s_c", "bt_c", {"weight": "bw_c"}),
            ("c_base", "s_c", "bt_c", {"base": 2}),
        ]
        if family == "sigmoid":
            shared += [
                ("c_pw", "s_c", "bt_c", {"pos_weight": "bpw_c"}),
                ("c_w_pw", "s_c", "bt_c", {"weight": "bw_c", "pos_weight": "bpw_c"}),
            ]
        for tag, zk, tk, kw in shared:
            for red in ("mean", "sum", "none", "parts"):
                if red != "mean" and tag not in ("a", "c", "c_w"):
                    continue
                for k, own in enumerate(_OWN_OPTIONS[family]):
                    if k and tag not in ("a", "c", "sat", "hard", "c_w"):
                        continue
                    for validate in (True, False):
                        if not validate and (red != "mean" or k):
                            continue
                        kwargs = {
                            a: (x[v] if a in ("weight", "pos_weight") else v) for a, v in kw.items()
                        }
                        kwargs.update(own, reduction=red, validate=validate)
                        for fn in (loss, grad):
                            key = f"{fn.__name__}|{tag}|{red}|{k}|{validate}"
                            out.append((key, _bind(fn, (x[zk], x[tk]), kwargs)))
        for fn in (loss, grad):
            out.append(
                (f"{fn.__name__}|c_float32", _bind(fn, (x["s_c"].astype("float32"), x["bt_c"]), {}))
            )
            out.append((f"{fn.__name__}|list", _bind(fn, ([0.5, -2.0, 0.0], [1.0, 0.0, 1.0]), {})))
    return out


def _bind(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
    return lambda: fn(*args, **kwargs)


def cases() -> list[tuple[str, Call]]:
    """``(key, call)`` for every pinned call that returns a result."""
    x = _inputs()
    return _labelled_cases(x) + _target_cases(x) + _sigmoid_cases(x)


def bad_cases() -> list[tuple[str, Call]]:
    """``(key, call)`` for calls that raise (the message is pinned)."""
    x = _inputs()
    z, y, t, v = x["z_c"], x["y_c"], x["t_c"], x["v_c"]
    bad_z = z.copy()
    bad_z[2, 3] = np.nan
    inf_z = z.copy()
    inf_z[5, 1] = np.inf
    bad_y = y.copy()
    bad_y[4] = 10
    out: list[tuple[str, Call]] = []
    for _, loss, grad in _LABELLED:
        for fn in (loss, grad):
            name = fn.__name__
            out += [
                (f"{name}|nan", _bind(fn, (bad_z, y), {})),
                (f"{name}|inf", _bind(fn, (inf_z, y), {})),
                (f"{name}|label", _bind(fn, (z, bad_y), {})),
                (f"{name}|float_label", _bind(fn, (z, y.astype(float)), {})),
                (f"{name}|shape", _bind(fn, (z, y[:3]), {})),
                (f"{name}|axis", _bind(fn, (z, y), {"axis": 2})),
                (f"{name}|axis_bool", _bind(fn, (z, y), {"axis": True})),
                (f"{name}|reduction", _bind(fn, (z, y), {"reduction": "avg"})),
                (f"{name}|ignore_bool", _bind(fn, (z, y), {"ignore_index": True})),
                (f"{name}|unknown", _bind(fn, (z, y), {"bogus": 1})),
                (f"{name}|scalar", _bind(fn, (np.float64(1.0), y), {})),
                (f"{name}|mixed", _bind(fn, (z, "abc"), {})),
            ]
        out.append((f"{loss.__name__}|complex", _bind(loss, (z.astype(complex), y), {})))
    f, g = crossent.softmax_focal_loss, crossent.softmax_focal_loss_grad
    out += [
        ("focal|gamma", _bind(f, (z, y), {"gamma": -1.0})),
        ("focal|gamma_bool", _bind(g, (z, y), {"gamma": True})),
        ("focal|weight_shape", _bind(f, (z, y), {"weight": x["w"][:4]})),
        ("focal|weight_neg", _bind(g, (z, y), {"weight": -x["w"]})),
        ("focal|base", _bind(f, (z, y), {"base": 1})),
        ("poly|epsilon", _bind(crossent.poly1_cross_entropy, (z, y), {"epsilon": -2})),
        ("poly|base", _bind(crossent.poly1_cross_entropy, (z, y), {"base": 2})),
        ("hinge|margin", _bind(crossent.multiclass_hinge_loss, (z, y), {"margin": -1})),
        ("hinge|variant", _bind(crossent.multiclass_hinge_loss_grad, (z, y), {"variant": "x"})),
        ("hinge|weight", _bind(crossent.multiclass_hinge_loss, (z, y), {"weight": x["w"]})),
    ]
    st, stg = (
        crossent.softmax_cross_entropy_with_targets,
        crossent.softmax_cross_entropy_with_targets_grad,
    )
    bad_t = t.copy()
    bad_t[1, 1] = -0.1
    d, dg = crossent.distillation_loss, crossent.distillation_loss_grad
    out += [
        ("targets|neg", _bind(st, (z, bad_t), {})),
        ("targets|sum", _bind(stg, (z, t * 1.5), {})),
        ("targets|shape", _bind(st, (z, t[:, :4]), {})),
        ("targets|nan_logit", _bind(stg, (bad_z, t), {})),
        ("targets|temperature", _bind(st, (z, t), {"temperature": 0})),
        ("targets|smoothing", _bind(stg, (z, t), {"label_smoothing": 2})),
        ("distill|shape", _bind(d, (z, v[:3]), {})),
        ("distill|classes", _bind(d, (z, v[:, :4]), {})),
        ("distill|nan", _bind(dg, (bad_z, v), {})),
        ("distill|probs", _bind(d, (z, t * 2), {"teacher_form": "probs"})),
        ("distill|form", _bind(d, (z, v), {"teacher_form": "prob"})),
        ("distill|direction", _bind(dg, (z, v), {"direction": "both"})),
        ("distill|temperature", _bind(d, (z, v), {"temperature": -1.0})),
        ("distill|reduction", _bind(dg, (z, v), {"reduction": "max"})),
        ("distill|axis", _bind(d, (z, v), {"axis": 5})),
    ]
    s, sg = crossent.sigmoid_cross_entropy, crossent.sigmoid_cross_entropy_grad
    sf, sfg = crossent.sigmoid_focal_loss, crossent.sigmoid_focal_loss_grad
    sx, bt = x["s_c"], x["bt_c"]
    nan_x = sx.copy()
    nan_x[3, 3] = np.nan
    out += [
        ("sigmoid|nan", _bind(s, (nan_x, bt), {})),
        ("sigmoid|target", _bind(sg, (sx, bt * 2), {})),
        ("sigmoid|shape", _bind(s, (sx, bt[:2]), {})),
        ("sigmoid|weight", _bind(sg, (sx, bt), {"weight": -x["bw_c"]})),
        ("sigmoid|weight_shape", _bind(s, (sx, bt), {"weight": np.ones(3)})),
        ("sigmoid|pos_weight", _bind(s, (sx, bt), {"pos_weight": -x["bpw_c"]})),
        ("sigmoid|smoothing", _bind(s, (sx, bt), {"label_smoothing": -0.1})),
        ("sigmoid|reduction", _bind(sg, (sx, bt), {"reduction": "avg"})),
        ("sigmoid|base", _bind(s, (sx, bt), {"base": 0})),
        ("sigmoid|unknown", _bind(s, (sx, bt), {"axis": 0})),
        ("sigmoid|complex", _bind(s, (sx.astype(complex), bt), {})),
        ("sigmoid_focal|nan", _bind(sfg, (nan_x, bt), {})),
        ("sigmoid_focal|gamma", _bind(sf, (sx, bt), {"gamma": -0.5})),
        ("sigmoid_focal|alpha", _bind(sfg, (sx, bt), {"alpha": 1.5})),
        ("sigmoid_focal|pos_weight", _bind(sf, (sx, bt), {"pos_weight": x["bpw_c"]})),
        ("sigmoid_focal|target", _bind(sf, (sx, bt - 1), {})),
    ]
    return out


def _fingerprint(value: Any) -> str:
    """``type dtype shape sha256`` of one array or scalar: equal exactly when the type,
    dtype, shape and every bit of the values are (NaN payloads and -0.0 included)."""
    array = np.ascontiguousarray(np.asarray(value))
    digest = hashlib.sha256(array.tobytes()).hexdigest()[:32]
    return f"{type(value).__name__} {array.dtype} {array.shape} {digest}"


def record(call: Call) -> str:
    """The stored form of one call's outcome: its result's fingerprint, or its error."""
    try:
        result = call()
    except Exception as exc:  # the error is what is pinned
        return f"raises {type(exc).__name__}: {exc}"
    if isinstance(result, tuple):  # LossParts
        parts = "; ".join(_fingerprint(part) for part in result)
        return f"{type(result).__name__}({parts})"
    return _fingerprint(result)


def main(path: str) -> None:
    stored = {key: record(call) for key, call in cases() + bad_cases()}
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(stored, handle, indent=0, sort_keys=True)
        handle.write("\n")
    print(f"{len(stored)} outcomes written to {path}")


if __name__ == "__main__":
    main(sys.argv[1])
