"""crossent.torch as a drop-in for torch.nn, argument by argument.

Float64 ``torch.nn.functional`` is the oracle for values and gradients; the module
surface (signatures, ``repr``, ``state_dict``, ``.to``, copies, ``nn.Sequential``,
``torch.compile``) is compared with ``torch.nn``'s. Where crossent differs on purpose
(0 for a mean over nothing, float32 results for float16/bfloat16, its own exception
classes, ``size_average``/``reduce`` refused) the test pins the documented behaviour
(docs/differs.md, "Differences from torch.nn"). The sweeps that test_cross_entropy.py
already runs (2-D and 3-D float64 weight x ignore_index x smoothing x reduction) are
not repeated.
"""

from __future__ import annotations

import copy
import inspect
import itertools
import pickle
import warnings

import pytest

from crossent.errors import InputError, InputTypeError

torch = pytest.importorskip("torch")
F = torch.nn.functional
nn = torch.nn
ct = pytest.importorskip("crossent.torch")

REDUCTIONS = ("none", "mean", "sum")
#: Value and gradient tolerances against float64 PyTorch of the same (rounded) inputs.
TOLERANCES = {
    torch.float64: ({"rtol": 1e-12, "atol": 1e-13}, {"rtol": 1e-11, "atol": 1e-14}),
    torch.float32: ({"rtol": 2e-6, "atol": 1e-6}, {"rtol": 1e-5, "atol": 1e-7}),
    # The loss in float32, the gradient rounded once to the input dtype.
    torch.bfloat16: ({"rtol": 2e-6, "atol": 1e-6}, {"rtol": 2**-8, "atol": 1e-4}),
    torch.float16: ({"rtol": 2e-6, "atol": 1e-6}, {"rtol": 2**-11, "atol": 1e-5}),
}


def _value_and_grad(fn, x, *args, upstream=None, **kw):
    leaf = x.detach().clone().requires_grad_(True)
    loss = fn(leaf, *args, **kw)
    u = torch.ones_like(loss) if upstream is None else upstream.to(loss.dtype)
    (grad,) = torch.autograd.grad((loss * u).sum(), leaf)
    return loss.detach(), grad


def _check(fn, ref_fn, x, args, ref_args, *, dtype, upstream=None, **kw):
    """``fn`` on ``x`` (of ``dtype``) against ``ref_fn`` on its float64 copy."""
    ours, g = _value_and_grad(fn, x.to(dtype), *args, upstream=upstream, **kw)
    ref, g_ref = _value_and_grad(ref_fn, x.to(dtype).double(), *ref_args, upstream=upstream, **kw)
    out = torch.float64 if dtype == torch.float64 else torch.float32
    assert ours.dtype == out, (ours.dtype, kw)  # float32 for float16/bfloat16 (documented)
    assert g.dtype == dtype
    assert ours.shape == ref.shape, kw
    tol, gtol = TOLERANCES[dtype]
    torch.testing.assert_close(ours.double(), ref, **tol, msg=lambda m: f"{kw}: {m}")
    torch.testing.assert_close(g.double(), g_ref, **gtol, msg=lambda m: f"{kw}: {m}")


# --- signatures and positional calls ---------------------------------------------------

PAIRS = [
    (ct.cross_entropy, F.cross_entropy),
    (ct.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits),
    (ct.CrossEntropyLoss, nn.CrossEntropyLoss),
    (ct.BCEWithLogitsLoss, nn.BCEWithLogitsLoss),
]


@pytest.mark.parametrize(("ours", "theirs"), PAIRS, ids=lambda f: f.__name__)
def test_signature_begins_with_torch_parameters(ours, theirs) -> None:
    """torch's parameters, in torch's order, kind and default, then crossent's own
    options keyword-only: any call a torch user writes, positional or by keyword, binds
    the same (on main ``cross_entropy`` lacked ``size_average`` and ``reduce``, so its
    fourth positional argument was ``ignore_index``, torch's is ``size_average``)."""
    mine = list(inspect.signature(ours).parameters.values())
    torch_params = list(inspect.signature(theirs).parameters.values())
    got = [(p.name, p.kind, p.default) for p in mine[: len(torch_params)]]
    assert got == [(p.name, p.kind, p.default) for p in torch_params]
    assert all(p.kind == p.KEYWORD_ONLY for p in mine[len(torch_params) :])


def test_positional_call_binds_as_torch() -> None:
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(6, 5, dtype=torch.float64, generator=gen)
    y = torch.tensor([0, 1, 2, 3, 4, 1])
    w = torch.rand(5, dtype=torch.float64, generator=gen) + 0.1
    args = (w, None, 1, None, "sum", 0.2)  # weight, size_average, ignore_index, reduce, ...
    torch.testing.assert_close(ct.cross_entropy(z, y, *args), F.cross_entropy(z, y, *args))
    bce_args = (w, None, None, "none", w)  # weight, size_average, reduce, reduction, pos_weight
    t = torch.rand(6, 5, dtype=torch.float64, generator=gen)
    torch.testing.assert_close(
        ct.binary_cross_entropy_with_logits(z, t, *bce_args),
        F.binary_cross_entropy_with_logits(z, t, *bce_args),
    )
    module = ct.CrossEntropyLoss(w, None, 1, None, "sum", 0.2)
    torch.testing.assert_close(module(z, y), nn.CrossEntropyLoss(*args)(z, y))


LEGACY = [{"size_average": False}, {"reduce": False}, {"size_average": True, "reduce": True}]


@pytest.mark.parametrize("legacy", LEGACY, ids=str)
def test_legacy_size_average_and_reduce_are_refused(legacy) -> None:
    """A decision, documented: torch maps the deprecated ``size_average``/``reduce`` to a
    reduction with a warning; crossent raises an InputError naming ``reduction`` (on
    main ``cross_entropy`` raised Python's TypeError for an unknown keyword)."""
    z, y = torch.randn(3, 4), torch.tensor([0, 1, 3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        F.cross_entropy(z, y, **legacy)  # accepted by torch
    calls = [
        lambda: ct.cross_entropy(z, y, **legacy),
        lambda: ct.CrossEntropyLoss(**legacy),
        lambda: ct.binary_cross_entropy_with_logits(z, torch.rand(3, 4), **legacy),
        lambda: ct.BCEWithLogitsLoss(**legacy),
    ]
    for call in calls:
        with pytest.raises(InputError, match="`reduction='mean'`"):
            call()


# --- class ids -----------------------------------------------------------------------


def _k_dim_case(seed: int):
    gen = torch.Generator().manual_seed(seed)
    z = 3 * torch.randn(3, 5, 4, 2, dtype=torch.float64, generator=gen)
    y = torch.randint(0, 5, (3, 4, 2), generator=gen)
    y[0, 1, 0] = y[2, 3, 1] = -100
    y[1, 2, 1] = 2  # ignore_index=2 drops these (a valid class)
    w = torch.rand(5, dtype=torch.float64, generator=gen) + 0.1
    return z, y, w


@pytest.mark.parametrize("dtype", list(TOLERANCES), ids=str)
def test_k_dimensional_class_ids_every_option_and_dtype(dtype) -> None:
    """(N, C, d1, d2) logits, (N, d1, d2) targets: weight x ignore_index (the default
    -100, and a valid class) x smoothing x reduction, float64 down to bfloat16 input,
    values and gradients against float64 F.cross_entropy."""
    z, y, w = _k_dim_case(1)
    up = torch.randn(y.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for use_w, ignore, eps, reduction in itertools.product(
        (False, True), (-100, 2), (0.0, 0.3), REDUCTIONS
    ):
        labels = y if ignore == -100 else torch.where(y < 0, 0, y)
        kw = {"ignore_index": ignore, "label_smoothing": eps, "reduction": reduction}
        weight = w.to(dtype) if use_w else None
        ref_weight = None if weight is None else weight.double()
        upstream = up if reduction == "none" else None
        _check(
            lambda x, t, ww, **k: ct.cross_entropy(x, t, ww, **k),
            lambda x, t, ww, **k: F.cross_entropy(x, t, ww, **k),
            z, (labels, weight), (labels, ref_weight), dtype=dtype, upstream=upstream, **kw,
        )  # fmt: skip


@pytest.mark.parametrize("target_dtype", [torch.int64, torch.int32, torch.uint8], ids=str)
def test_target_dtypes_and_non_contiguous_views(target_dtype) -> None:
    """int32 (torch raises), uint8 and int64 targets, as non-contiguous views (a
    transposed slice, a strided K-dim slice), equal to int64 targets in torch."""
    z, y, w = _k_dim_case(3)
    y = torch.where(y < 0, 2, y)  # uint8 holds no -100: ignore class 2
    wide = torch.stack([y, torch.zeros_like(y)], dim=-1).to(target_dtype)[..., 0]
    assert not wide.is_contiguous()
    flat_z = z.movedim(1, -1).reshape(-1, 5)
    flat = torch.stack([y.reshape(-1), y.reshape(-1)], 1).to(target_dtype)[:, 1]
    assert not flat.is_contiguous()
    kw = {"ignore_index": 2, "label_smoothing": 0.1}
    for logits, labels in ((z, wide), (flat_z, flat), (flat_z[1::3], flat[1::3])):
        ref_labels = labels.long().contiguous()
        for reduction in REDUCTIONS:
            _check(
                ct.cross_entropy, F.cross_entropy, logits, (labels, w), (ref_labels, w),
                dtype=torch.float64, reduction=reduction, **kw,
            )  # fmt: skip
    if target_dtype == torch.int32:
        with pytest.raises(RuntimeError, match="expected target dtype"):
            F.cross_entropy(z, wide)


def test_unbatched_input_with_options_and_an_ignored_target() -> None:
    """(C,) logits with a 0-d target (any integer dtype), smoothing and weights; an
    ignored 0-d target: torch's 'mean' is NaN (0/0), crossent's 0 (documented)."""
    gen = torch.Generator().manual_seed(4)
    z = torch.randn(6, dtype=torch.float64, generator=gen)
    w = torch.rand(6, dtype=torch.float64, generator=gen) + 0.1
    for target, reduction in itertools.product(
        (torch.tensor(4), torch.tensor(4, dtype=torch.int32), torch.tensor(4, dtype=torch.uint8)),
        REDUCTIONS,
    ):
        kw = {"label_smoothing": 0.25, "reduction": reduction}
        _check(ct.cross_entropy, F.cross_entropy, z, (target, w), (target.long(), w),
               dtype=torch.float32, **kw)  # fmt: skip
    ignored = torch.tensor(-100)
    assert bool(torch.isnan(F.cross_entropy(z, ignored)))
    loss, g = _value_and_grad(ct.cross_entropy, z, ignored, w, label_smoothing=0.1)
    assert float(loss) == 0.0
    assert not bool(g.any())
    for reduction in ("none", "sum"):
        assert float(ct.cross_entropy(z, ignored, reduction=reduction)) == 0.0
        assert float(F.cross_entropy(z, ignored, reduction=reduction)) == 0.0


def test_empty_batch_shapes_and_sums() -> None:
    """(0, C) and (0, C, d): 'none' of torch's shape and 'sum' 0, as torch; 'mean' 0
    where torch's is NaN (documented), with weights and smoothing too."""
    w = torch.rand(5) + 0.1
    for z, y in (
        (torch.randn(0, 5), torch.zeros(0, dtype=torch.int32)),
        (torch.randn(0, 5, 3), torch.zeros(0, 3, dtype=torch.int64)),
        (torch.randn(0, 5), torch.rand(0, 5)),
    ):
        for kw in ({}, {"weight": w, "label_smoothing": 0.2}):
            ref_y = y if y.is_floating_point() else y.long()
            none = ct.cross_entropy(z, y, reduction="none", **kw)
            assert none.shape == F.cross_entropy(z, ref_y, reduction="none", **kw).shape
            assert float(ct.cross_entropy(z, y, reduction="sum", **kw)) == 0.0
            assert bool(torch.isnan(F.cross_entropy(z, ref_y, **kw)))
            assert float(ct.cross_entropy(z, y, **kw)) == 0.0


# --- probability targets -------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
def test_k_dimensional_probability_targets(dtype) -> None:
    """(N, C, d1, d2) probability targets and the unbatched (C,) form, with torch's
    smoothing-with-weights semantics, every reduction (the mean over N*d1*d2 rows)."""
    gen = torch.Generator().manual_seed(5)
    z = 2 * torch.randn(3, 5, 4, 2, dtype=torch.float64, generator=gen)
    t = torch.softmax(torch.randn(3, 5, 4, 2, dtype=torch.float64, generator=gen), 1)
    w = torch.rand(5, dtype=torch.float64, generator=gen) + 0.1
    t = t.to(dtype)  # targets in the input's dtype, as a torch user has them
    for use_w, eps, reduction in itertools.product((False, True), (0.0, 0.2), REDUCTIONS):
        weight = w.to(dtype) if use_w else None
        ref_w = None if weight is None else weight.double()
        kw = {"label_smoothing": eps, "reduction": reduction}
        _check(
            lambda x, s, ww, **k: ct.cross_entropy(x, s, ww, **k),
            lambda x, s, ww, **k: F.cross_entropy(x, s, ww, **k),
            z, (t, weight), (t.double(), ref_w), dtype=dtype, **kw,
        )  # fmt: skip
        _check(ct.cross_entropy, F.cross_entropy, z[1, :, 2, 0], (t[1, :, 2, 0], weight),
               (t[1, :, 2, 0].double(), ref_w), dtype=dtype, **kw)  # fmt: skip


# --- BCE -----------------------------------------------------------------------------

BCE_OPTIONS = [
    {"pos_weight": (3,)},
    {"pos_weight": (4, 1, 3)},
    {"pos_weight": ()},
    {"weight": (4, 1, 1)},
    {"weight": (2, 3)},
    {"weight": ()},
    {"weight": (1, 2, 3), "pos_weight": (3,)},
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16], ids=str)
def test_bce_weight_and_pos_weight_broadcasting(dtype) -> None:
    """``weight`` and ``pos_weight`` of every shape that broadcasts to the input's
    (scalars, per-class, per-sample), every reduction, against float64 PyTorch."""
    gen = torch.Generator().manual_seed(6)
    x = 4 * torch.randn(4, 2, 3, dtype=torch.float64, generator=gen)
    t = torch.rand(4, 2, 3, dtype=torch.float64, generator=gen).to(dtype)
    up = torch.randn(4, 2, 3, dtype=torch.float64, generator=gen)
    for shapes, reduction in itertools.product(BCE_OPTIONS, REDUCTIONS):
        kw = {
            name: (torch.rand(shape, dtype=torch.float64, generator=gen) + 0.2).to(dtype)
            for name, shape in shapes.items()
        }
        ref_kw = {name: value.double() for name, value in kw.items()}
        upstream = up if reduction == "none" else None
        _check(
            lambda a, b, extra, **k: ct.binary_cross_entropy_with_logits(a, b, **extra, **k),
            lambda a, b, extra, **k: F.binary_cross_entropy_with_logits(a, b, **extra, **k),
            x, (t, kw), (t.double(), ref_kw), dtype=dtype, upstream=upstream, reduction=reduction,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("x_dtype", "t_dtype", "out"),
    [
        (torch.float64, torch.float32, torch.float64),  # torch.nn: float32 (the target's)
        (torch.float32, torch.float64, torch.float64),
        (torch.float32, torch.bfloat16, torch.float32),  # torch.nn: bfloat16
        (torch.bfloat16, torch.float32, torch.float32),
        (torch.bfloat16, torch.bfloat16, torch.float32),  # torch.nn: bfloat16
    ],
    ids=str,
)
def test_bce_mixed_dtypes_promote_and_bfloat16_logits_are_exact(x_dtype, t_dtype, out) -> None:
    """Logits and targets of two float dtypes: the promoted dtype, at least float32
    (docs/index.md "Result dtypes"; docs/differs.md: torch.nn returns the target's
    dtype). bfloat16 logits -3.09375 and 1.5: torch.nn gives 0.78125 for both (float32
    or bfloat16 targets); the exact losses of the rounded inputs (mpmath, 80 digits)
    are 0.781516812... and 0.781491403..., which crossent gives to float32 rounding.
    Guards the mutants "compute in bfloat16" and "return the target's dtype"."""
    mpmath = pytest.importorskip("mpmath")
    x = torch.tensor([-3.09375, 1.5], dtype=x_dtype)
    t = torch.tensor([0.23828125, 0.61328125], dtype=t_dtype)
    with mpmath.workdps(80):
        exact = [
            float(mpmath.log1p(mpmath.exp(mpmath.mpf(a))) - mpmath.mpf(b) * mpmath.mpf(a))
            for a, b in zip(x.double().tolist(), t.double().tolist(), strict=True)
        ]
    want = torch.tensor(exact, dtype=torch.float64)
    tol = {"rtol": 1e-15, "atol": 0.0} if out == torch.float64 else {"rtol": 2**-23, "atol": 0.0}
    rows = ct.binary_cross_entropy_with_logits(x, t, reduction="none")
    assert rows.dtype == out
    torch.testing.assert_close(rows.double(), want, **tol)
    mean = ct.binary_cross_entropy_with_logits(x, t)
    assert mean.dtype == out
    torch.testing.assert_close(mean.double(), want.mean(), **tol)
    assert ct.sigmoid_focal_loss(x, t, reduction="sum").dtype == out


# --- errors --------------------------------------------------------------------------

Z, Y = torch.randn(4, 3), torch.tensor([0, 1, 2, 1])
ERRORS = [
    # (call with fn = F.cross_entropy or ct.cross_entropy, torch's error, crossent's)
    (lambda f: f(Z, torch.tensor([0, 3, 1, 1])), IndexError, InputError),
    (lambda f: f(Z, torch.tensor([0, -1, 1, 1])), IndexError, InputError),
    (lambda f: f(Z, Y[:3]), ValueError, InputError),
    (lambda f: f(Z, Y, reduction="avg"), ValueError, InputError),
    (lambda f: f(Z, Y, label_smoothing=1.5), RuntimeError, InputError),
    (lambda f: f(Z, Y, torch.ones(4)), RuntimeError, InputError),
    (lambda f: f(Z, Y.bool()), RuntimeError, InputTypeError),
    (lambda f: f(Z, torch.rand(4, 2)), RuntimeError, InputError),
    (lambda f: f(Z, torch.softmax(Z, 1), ignore_index=0), RuntimeError, InputError),
    (lambda f: f(Z.long(), Y), NotImplementedError, InputTypeError),
]


@pytest.mark.parametrize(("call", "torch_error", "ours"), ERRORS)
def test_errors_where_torch_errors(call, torch_error, ours) -> None:
    """crossent raises where torch raises; its InputError is a ValueError and its
    InputTypeError a TypeError, not torch's IndexError or RuntimeError (the table in
    docs/differs.md): ``except (IndexError, RuntimeError, ValueError, TypeError)``
    covers both libraries."""
    with pytest.raises(torch_error):
        call(F.cross_entropy)
    with pytest.raises(ours) as caught:
        call(ct.cross_entropy)
    assert isinstance(caught.value, (ValueError, TypeError))
    assert "`" in str(caught.value)  # names the argument


# --- the module surface --------------------------------------------------------------


def test_module_repr_state_dict_and_dtype_moves() -> None:
    """``repr``, buffer names, ``state_dict`` both ways, ``.to(dtype)``, ``.double()``."""
    w, pw = torch.rand(5) + 0.1, torch.rand(5) + 0.5
    pairs = [
        (ct.CrossEntropyLoss(weight=w, label_smoothing=0.1),
         nn.CrossEntropyLoss(weight=w, label_smoothing=0.1)),
        (ct.BCEWithLogitsLoss(weight=w, pos_weight=pw),
         nn.BCEWithLogitsLoss(weight=w, pos_weight=pw)),
        (ct.CrossEntropyLoss(), nn.CrossEntropyLoss()),
    ]  # fmt: skip
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)
        assert dict(ours.named_buffers()).keys() == dict(theirs.named_buffers()).keys()
        assert ours.state_dict().keys() == theirs.state_dict().keys()
        fresh = type(ours)(**{k: torch.zeros_like(v) for k, v in ours.state_dict().items()})
        fresh.load_state_dict(theirs.state_dict())
        for key, value in theirs.state_dict().items():
            assert torch.equal(fresh.state_dict()[key], value)
        type(theirs)(**dict(theirs.state_dict().items())).load_state_dict(ours.state_dict())
        for moved in (copy.deepcopy(ours).to(torch.float64), copy.deepcopy(ours).double()):
            assert all(b.dtype == torch.float64 for b in moved.buffers())
    module = ct.CrossEntropyLoss(weight=w).double()
    z = torch.randn(3, 5, dtype=torch.float64)
    torch.testing.assert_close(module(z, Y[:3]), F.cross_entropy(z, Y[:3], w.double()))


def test_module_attributes_follow_assignment_as_torch() -> None:
    z, y = torch.randn(4, 3, dtype=torch.float64), Y
    ours, theirs = ct.CrossEntropyLoss(), nn.CrossEntropyLoss()
    for module in (ours, theirs):
        module.reduction, module.ignore_index, module.label_smoothing = "none", 1, 0.2
    torch.testing.assert_close(ours(z, y), theirs(z, y))


def test_deepcopy_and_pickle_keep_options_and_buffers() -> None:
    w = torch.rand(3) + 0.1
    module = ct.CrossEntropyLoss(weight=w, ignore_index=2, label_smoothing=0.1, z_loss=1e-3)
    z = torch.randn(4, 3)
    want = module(z, Y)
    for clone in (copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
        assert clone.weight is not w
        assert torch.equal(clone.weight, w)
        assert (clone.ignore_index, clone.label_smoothing, clone.z_loss) == (2, 0.1, 1e-3)
        torch.testing.assert_close(clone(z, Y), want, rtol=0, atol=0)


def test_inside_sequential_and_a_compiled_model() -> None:
    """A model holding the loss (as a torch model holds nn.CrossEntropyLoss), eager and
    under torch.compile (aot_eager: the ops' fake kernels and autograd), gradients of
    the model's parameters equal to torch's loss's."""

    class Model(nn.Module):
        def __init__(self, loss: nn.Module) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 5))
            self.loss = loss

        def forward(self, h, y):
            return self.loss(self.body(h), y)

    torch.manual_seed(7)
    h, y = torch.randn(9, 6), torch.tensor([0, 4, -100, 3, 3, 1, 2, 0, -100])
    w = torch.rand(5) + 0.1
    ref = Model(nn.CrossEntropyLoss(weight=w, label_smoothing=0.1))
    ours = copy.deepcopy(ref)
    ours.loss = ct.CrossEntropyLoss(weight=w, label_smoothing=0.1)
    want = ref(h, y)
    want.backward()
    compiled = torch.compile(ours, backend="aot_eager", fullgraph=True)
    for model in (ours, compiled):
        ours.zero_grad()
        got = model(h, y)
        got.backward()
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
        for p, q in zip(ours.parameters(), ref.parameters(), strict=True):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_torch_jit_script_is_a_clear_error() -> None:
    """TorchScript cannot compile crossent's Python checks and custom ops; scripting the
    loss or a model holding it raises an error that says so and names torch.compile (on
    main: ``ValueError: Unknown type annotation: 'torch.Tensor | None'``)."""
    for module in (
        ct.CrossEntropyLoss(),
        ct.BCEWithLogitsLoss(),
        nn.Sequential(nn.Identity(), ct.CrossEntropyLoss()),
    ):
        with pytest.raises(InputTypeError, match=r"torch\.jit\.script.*torch\.compile"):
            torch.jit.script(module)


def test_linear_cross_entropy_loss_surface_as_torch() -> None:
    """nn.LinearCrossEntropyLoss (PyTorch 2.13): its parameters but ``out_features`` and
    ``options`` (documented), its ``num_classes`` attribute and ``repr`` fields (on main
    the repr held none of them), its state dict loaded both ways, the same values."""
    theirs_cls = getattr(nn, "LinearCrossEntropyLoss", None)
    if theirs_cls is None:
        pytest.skip("torch.nn.LinearCrossEntropyLoss needs PyTorch 2.13")
    mine = inspect.signature(ct.LinearCrossEntropyLoss).parameters
    for name, p in inspect.signature(theirs_cls).parameters.items():
        if name in ("out_features", "options"):
            assert name not in mine
            continue
        assert (mine[name].kind, mine[name].default) == (p.kind, p.default), name
    kw = {"bias": True, "ignore_index": -100, "label_smoothing": 0.1, "reduction": "sum"}
    torch.manual_seed(8)
    ours, theirs = ct.LinearCrossEntropyLoss(4, 7, **kw), theirs_cls(4, 7, **kw)
    ours.load_state_dict(theirs.state_dict())
    theirs.load_state_dict(ours.state_dict())
    assert ours.num_classes == theirs.num_classes == 7
    shared = theirs.extra_repr().replace(" out_features=(),", "").replace(", options=None", "")
    assert ours.extra_repr().startswith(shared), (ours.extra_repr(), shared)
    h, y = torch.randn(6, 4), torch.tensor([0, 6, -100, 3, 3, 1])
    torch.testing.assert_close(ours(h, y), theirs(h, y), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_second_derivative_of_class_ids_as_torch(dtype) -> None:
    """``create_graph=True`` through class-id targets (a gradient penalty, Hessian-vector
    products), every option torch has, against float64 F.cross_entropy (on main:
    "RuntimeError: Trying to backward through crossent.softmax_ce_labels_v2_backward
    ... no autograd formula"); ``gradgradcheck`` of crossent's own options."""
    z, y, w = _k_dim_case(9)
    up = torch.randn(y.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(10))

    def penalty_grad(fn, x, labels, upstream, **kw):
        leaf = x.detach().clone().requires_grad_(True)
        loss = fn(leaf, labels, **kw)
        u = torch.ones_like(loss) if upstream is None else upstream.to(loss.dtype)
        (g,) = torch.autograd.grad((loss * u).sum(), leaf, create_graph=True)
        (gg,) = torch.autograd.grad((g * g.detach().sign()).sum() + (g**2).sum(), leaf)
        return g.detach(), gg

    for use_w, ignore, eps, reduction in ((True, -100, 0.2, "mean"), (False, 2, 0.0, "none")):
        kw = {"weight": w.to(dtype) if use_w else None, "ignore_index": ignore}
        kw |= {"label_smoothing": eps, "reduction": reduction}
        ref_kw = {**kw, "weight": w if use_w else None}
        upstream = up if reduction == "none" else None
        labels = y if ignore == -100 else torch.where(y < 0, 0, y)
        g, gg = penalty_grad(ct.cross_entropy, z.to(dtype), labels, upstream, **kw)
        g_ref, gg_ref = penalty_grad(
            F.cross_entropy, z.to(dtype).double(), labels, upstream, **ref_kw
        )
        _, gtol = TOLERANCES[dtype]
        torch.testing.assert_close(g.double(), g_ref, **gtol)
        torch.testing.assert_close(gg.double(), gg_ref, **gtol)
    leaf = z[:2, :, :2, 0].detach().clone().requires_grad_(True)
    labels = torch.tensor([[1, -100], [4, 0]])
    for kw in ({"z_loss": 0.01, "temperature": 1.7}, {"soft_cap": 3.0, "label_smoothing": 0.1}):
        assert torch.autograd.gradgradcheck(
            lambda x, kw=kw: ct.cross_entropy(x, labels, w, reduction="none", **kw), (leaf,)
        )
