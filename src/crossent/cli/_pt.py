"""Read a PyTorch ``.pt`` / ``.pth`` file (``torch.save`` output): a tensor, or a dict of tensors.

The file is read with ``torch.load(path, weights_only=True, map_location="cpu")``:
PyTorch's restricted unpickler, which builds tensors and plain containers and refuses
any other object, so no code in the file is run.  A file in the zip format (the
default of ``torch.save`` since PyTorch 1.6) and larger than
:data:`._copied.IN_MEMORY_BYTES` (256 MiB) is copied to an unnamed scratch file in
TMPDIR, which is memory-mapped (``mmap=True`` on its name, ``/dev/fd/N``), so its
tensors stay out of memory; a smaller one, or one in the legacy format, is read into
memory.  The user's file itself is never mapped: a map of a file that another process
truncates while it is read ends the process with SIGBUS, which Python cannot catch
(a ``.pt`` past 256 MiB was mapped in place until branch leftovers10; where there is
no ``/dev/fd``, on Windows, which refuses to truncate a mapped file, it still is).
torch is imported only here, when such a file is given (the ``torch`` extra).

What the file holds says what it is, as in an ``.npz``:

* a dict (a ``state_dict``-like mapping of names to tensors) with ``labels`` and exactly
  one of ``probs``, ``logits``, ``log_probs``: the name says the form;
* a tuple or list of two tensors, ``torch.save((logits, labels), path)``: the
  predictions, then their labels (integer class ids or booleans); the order is the
  rule, so a pair whose second tensor is not of integers is refused (a list of two
  per-batch outputs is not a pair: ``torch.cat`` them), and another length is refused;
* a dict with one prediction tensor and no ``labels``, or a single tensor: the
  predictions, whose labels come from ``--labels FILE``.

A tensor or a pair has no name, so the form of its predictions is named by ``--logits`` /
``--log-probs`` (probabilities otherwise, as for a table and a ``.npy``).

bfloat16 tensors are widened to float32 (NumPy has no bfloat16; the widening is exact),
as the library does with a bfloat16 tensor; float16 stays float16, which the library
evaluates in float32 at least.  Every problem is a :class:`SourceError` naming the file.
"""

from __future__ import annotations

import errno
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from . import _copied
from ._dataset import Dataset, SourceError, prediction_arrays
from ._deps import require
from ._magic import LEGACY_TORCH_HEADER as _LEGACY_HEADER
from ._magic import ZIP_HEADER as _ZIP_HEADER

__all__ = ["load_pt", "open_pt", "pt_array"]

_UNPICKLER_ERROR = re.compile(r"WeightsUnpickler error:\s*([^\n]+)")
"""The line of torch's restricted-unpickler message that says what it met."""


def load_pt(path: Path) -> Any:
    """``torch.load(path, weights_only=True, map_location="cpu")`` (a large file in the
    zip format: a memory map of a scratch copy); a file it cannot read is a
    :class:`SourceError` of one line."""
    torch = require("torch", f"reading {path.suffix} files", extra="torch")
    try:
        with warnings.catch_warnings():
            # torch warns of what it then refuses (a pickle protocol it does not expect):
            # the refusal below says it in one line
            warnings.simplefilter("ignore")
            # mmap needs the zip format; is_zipfile only reads the end of the file.  A
            # map of a file truncated while it is read ends the process with SIGBUS, so
            # only a file too large to read into memory is mapped, and only a scratch
            # copy of it that nobody else can reach
            large = path.stat().st_size > _copied.IN_MEMORY_BYTES
            if not (large and zipfile.is_zipfile(path)):
                return torch.load(path, weights_only=True, map_location="cpu")
            if not _copied.named_copies():  # (Windows: a mapped file cannot be truncated)
                return torch.load(path, weights_only=True, map_location="cpu", mmap=True)
            with _copied.copied_file(path) as copy:
                return torch.load(copy, weights_only=True, map_location="cpu", mmap=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Unsupported global" in text:  # a class or function the restricted unpickler refused
            # (or a class name cut short: "torch._utils _rebuild_te" is no class either)
            if _legacy_pickles_cut(path):
                raise SourceError(
                    f"{path}: not a complete PyTorch file (truncated or damaged): "
                    "pickle data was truncated"
                ) from exc
            raise SourceError(
                f"{path}: holds Python objects other than tensors, which crossent never "
                "unpickles (torch.load with weights_only=True refused it); save a tensor or "
                "a dict of tensors"
            ) from exc
        found = _UNPICKLER_ERROR.search(text)
        detail = found.group(1) if found else (text.splitlines() or ["unreadable"])[0]
        raise _incomplete(path, exc) or SourceError(
            f"{path}: not a file torch.save wrote ({detail})"
        ) from exc
    except OSError as exc:
        if exc.errno == errno.EINVAL and _zip_cut(path):
            # torch's zip reader says EINVAL (no message) for a zip cut after its first
            # 4 KiB: "cannot be read (Invalid argument)" was said of every cut .pt of
            # more than 4 KiB, which the short ones' "truncated" line names
            raise SourceError(
                f"{path}: not a complete PyTorch file (truncated or damaged): the zip "
                "archive's end (its central directory) is missing"
            ) from exc
        raise  # an I/O error: "cannot be read", as for every format
    except Exception as exc:
        # A damaged or foreign file makes torch.load raise whatever its parser meets
        # (RuntimeError from the zip reader, EOFError, ValueError, KeyError, ...): any of
        # them means the same thing here, and the CLI's rule is one line, never a traceback.
        lines = str(exc).strip().splitlines()
        detail = f"{type(exc).__name__}: {lines[0] if lines else 'no message'}"
        raise _incomplete(path, exc) or SourceError(
            f"{path}: not a file torch.save wrote ({detail})"
        ) from exc


_LEGACY_PICKLES = 5
"""The pickles that start a legacy file: the magic number, the protocol version, the
system's sizes, the object, and the keys of its storages (whose bytes follow)."""


def _legacy_pickles_cut(path: Path) -> bool:
    """Whether ``path`` starts with the legacy format's header and its pickles end
    before their ``STOP`` (or hold a byte that is no pickle opcode).

    The pickles are walked with :func:`pickletools.genops`, which reads each opcode
    and its argument and builds nothing; a file cut inside a pickled class name reads
    as a name the restricted unpickler refuses, so the refusal alone cannot tell a cut
    file from a whole one holding other objects."""
    import pickletools

    try:
        with open(path, "rb") as file:
            if file.read(len(_LEGACY_HEADER)) != _LEGACY_HEADER:
                return False
            file.seek(0)
            for _ in range(_LEGACY_PICKLES):
                for _ in pickletools.genops(file):
                    pass
    except OSError:
        return False
    except ValueError:  # "pickle exhausted before seeing STOP", an argument cut short
        return True
    return False


def _zip_cut(path: Path) -> bool:
    """Whether ``path`` starts as a zip archive but has no end of central directory
    (:func:`zipfile.is_zipfile` looks for it at the end): a zip cut short."""
    try:
        with open(path, "rb") as file:
            head = file.read(len(_ZIP_HEADER))
        return head == _ZIP_HEADER and not zipfile.is_zipfile(path)
    except OSError:
        return False


def _incomplete(path: Path, exc: Exception) -> SourceError | None:
    """The one-line error of a file that starts as ``torch.save`` writes but cannot be
    read to its end (cut short by a copy or a full disk, or damaged); None for others.

    A file of fewer bytes than the zip header that are the start of either header; a
    zip whose archive miniz cannot read (torch: "failed finding central directory",
    then three sentences on corrupted checkpoints), or a file with the legacy format's
    header (or the start of it) that fails to load.  The reason is the first sentence of
    torch's message without its reader's class name (the restricted unpickler's line
    for an unpickling error; the exception's type where the message is empty)."""
    try:
        with open(path, "rb") as file:
            head = file.read(len(_LEGACY_HEADER))
    except OSError:
        return None
    if len(head) < len(_ZIP_HEADER) and (
        _ZIP_HEADER.startswith(head) or _LEGACY_HEADER.startswith(head)
    ):  # (an empty file is refused before torch is asked)
        return SourceError(
            f"{path}: not a complete PyTorch file (truncated or damaged): "
            f"{len(head)} bytes, the start of torch.save's header"
        )
    text = str(exc).strip()
    zipped = head.startswith(_ZIP_HEADER) and "miniz" in text
    if not (zipped or (len(head) >= 4 and _LEGACY_HEADER.startswith(head))):
        return None
    found = _UNPICKLER_ERROR.search(text)
    first = found.group(1) if found else text.splitlines()[0] if text else ""
    reason = first.split(". ")[0].removeprefix("PytorchStreamReader ").rstrip(".")
    return SourceError(
        f"{path}: not a complete PyTorch file (truncated or damaged): "
        f"{reason or type(exc).__name__}"
    )


def pt_array(path: Path, name: str, tensor: Any) -> Any:
    """A loaded tensor as a NumPy array on the same memory (bfloat16 widened to float32)."""
    import torch  # loaded already: the file was read by torch.load

    if not isinstance(tensor, torch.Tensor):
        raise SourceError(
            f"{path}: {name} must be a tensor; got {type(tensor).__name__} (save tensors, or "
            "a dict of tensors)"
        )
    if tensor.layout != torch.strided or tensor.is_quantized:
        raise SourceError(
            f"{path}: {name} is a {tensor.layout} tensor"
            f"{' (quantized)' if tensor.is_quantized else ''}; save a dense one (.to_dense(), "
            ".dequantize())"
        )
    if tensor.is_nested:  # strided, but ragged rows: was "has dtype torch.float32, which
        # cannot be read", blaming a dtype NumPy reads
        raise SourceError(
            f"{path}: {name} is a nested (ragged) tensor; save one dense tensor of shape "
            "(rows, classes) (torch.cat of the rows, or .to_padded_tensor(0.0) and the "
            "padding dropped)"
        )
    if tensor.device.type == "meta":  # shape and dtype only: "dtype ... cannot be read"
        raise SourceError(
            f"{path}: {name}: a meta tensor, which holds no values (only a shape and a "
            "dtype); save the tensor itself"
        )
    tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.to(torch.float32)
    try:
        return tensor.resolve_conj().resolve_neg().numpy()
    except (TypeError, RuntimeError) as exc:  # a dtype NumPy lacks (float8, uint16 in old torch)
        raise SourceError(f"{path}: {name} has dtype {tensor.dtype}, which cannot be read") from exc


def open_pt(path: Path, form: str | None, dtype: str | None = None) -> Dataset:
    """A ``.pt``/``.pth`` of predictions: a tensor or a ``(predictions, labels)`` pair in
    ``form`` (None: probabilities), or a dict whose names say the form (``form`` must
    then be None), with or without ``labels``."""
    loaded = load_pt(path)
    if isinstance(loaded, dict):
        return _from_dict(path, loaded, form)
    form = form or "probs"
    what = f"the predictions ({form})"
    if isinstance(loaded, (tuple, list)):
        return _from_pair(path, loaded, form, what)
    values = pt_array(path, "the tensor", loaded)
    return _bfloat16(Dataset(values, None, form, [], str(path), what=what), loaded)


def _from_pair(path: Path, loaded: tuple[Any, ...] | list[Any], form: str, what: str) -> Dataset:
    """``(predictions, labels)``: exactly two tensors, the second of class ids."""
    kind = type(loaded).__name__
    if len(loaded) != 2:
        raise SourceError(
            f"{path}: holds a {kind} of {len(loaded)} item{'' if len(loaded) == 1 else 's'}; "
            "crossent reads a tensor, a dict "
            "of tensors, or a pair (predictions, labels) (a list of per-batch outputs: save "
            "torch.cat of it)"
        )
    values = pt_array(path, f"the {kind}'s first item (the predictions)", loaded[0])
    labels = pt_array(path, f"the {kind}'s second item (the labels)", loaded[1])
    if labels.dtype != np.bool_ and not np.issubdtype(labels.dtype, np.integer):
        raise SourceError(
            f"{path}: a {kind} of two tensors is read as (predictions, labels), and its "
            f"second item has dtype {labels.dtype}, not integer class ids (a list of two "
            "per-batch outputs? save torch.cat of it, and the labels beside it)"
        )
    return _bfloat16(Dataset(values, labels, form, [], str(path), what=what), loaded[0])


def _from_dict(path: Path, loaded: dict[Any, Any], form: str | None) -> Dataset:
    names = sorted(str(key) for key in loaded)
    found = [name for name in prediction_arrays() if name in loaded]
    if len(found) != 1:
        raise SourceError(
            f"{path}: a dict of tensors needs exactly one named probs, logits or log_probs "
            f"(found: {', '.join(names) or 'an empty dict'}); or save the predictions as "
            "one tensor and name their form with --logits or --log-probs"
        )
    name = found[0]
    if form is not None:
        raise SourceError(
            f"{path}: --logits/--log-probs name the form of a single tensor; in a dict of "
            f"tensors the name ({name!r}) says the form"
        )
    values = pt_array(path, f"{name!r}", loaded[name])
    labels = pt_array(path, "'labels'", loaded["labels"]) if "labels" in loaded else None
    dataset = Dataset(values, labels, name, [], str(path), what=f"`{name}`", form_named=True)
    unused = [str(key) for key in loaded if key not in (name, "labels")]
    if unused and labels is not None:  # else from --labels FILE, said in the header
        dataset.columns = {"predictions": name, "label": "labels", "ignored": unused}
    return _bfloat16(dataset, loaded[name])


def _bfloat16(dataset: Dataset, tensor: Any) -> Dataset:
    """``dataset``, marked as read from bfloat16 predictions (widened to float32 here,
    checked with bfloat16's tolerance by :func:`._report.build_report`)."""
    dataset.bfloat16 = str(getattr(tensor, "dtype", "")) == "torch.bfloat16"
    return dataset
