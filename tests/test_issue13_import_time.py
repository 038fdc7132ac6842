"""``import crossent`` and the CLI's start do not import SciPy or other heavy packages.

Every ``crossent`` command and every subprocess test pays for what ``import crossent``
imports: SciPy alone cost about 0.3 s of 0.7 s (issue 13). These modules import SciPy
in the functions that need it, and ``_numerics`` through a :class:`LazyModule` global.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import numpy as np
import pytest
from tests.fresh_process import run_python

from crossent import _lazy

# Imported by none of ``import crossent``, ``import crossent.cli`` or ``crossent --help``.
HEAVY = (
    "scipy",
    "pandas",
    "pyarrow",
    "rich",
    "matplotlib",
    "sklearn",
    "torch",
    "jax",
    "numba",
    "llvmlite",
)

# Modules of packages that ``import crossent`` does import, loaded only at first use:
# array-api-compat's NumPy namespace (its ``from numpy import *`` imports NumPy's f2py,
# testing, ma, random, ...: about as long as NumPy itself) and the package metadata
# (``crossent.__version__``, ``crossent --version``).
DEFERRED = ("array_api_compat.numpy", "numpy.f2py", "numpy.testing", "importlib.metadata")

SCRIPT = textwrap.dedent(
    """
    import contextlib, io, json, sys
    HEAVY = {heavy}
    DEFERRED = {deferred}
    def loaded():
        packages = {{m.split(".")[0] for m in sys.modules}} & set(HEAVY)
        return sorted(packages | (set(DEFERRED) & set(sys.modules)))
    seen = {{}}
    import crossent
    seen["import crossent"] = loaded()
    import crossent.cli
    seen["import crossent.cli"] = loaded()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        crossent.cli.main(["--help"])
    seen["crossent --help"] = loaded()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        crossent.cli.main(["report", "--help"])
    seen["crossent report --help"] = loaded()
    seen["dir"] = "__version__" in dir(crossent)
    version = io.StringIO()
    with contextlib.redirect_stdout(version), contextlib.suppress(SystemExit):
        crossent.cli.main(["--version"])
    seen["crossent --version"] = [version.getvalue(), crossent.__version__]
    seen["entropy"] = float(crossent.entropy([0.5, 0.25, 0.25], base=2))
    seen["kl"] = float(crossent.kl_divergence([0.5, 0.5], [0.25, 0.75]))
    print(json.dumps(seen))
    """
)


def test_issue13_import_and_help_import_no_heavy_package(tmp_path: Path) -> None:
    # A fresh process is what this needs (nothing imported yet), not a cold Numba cache:
    # on the suite's cache (``tasks.py test`` sets it) the two measures' small kernels
    # load instead of compiling from scratch (a minute of a CI worker). What it checks
    # (the modules imported before any measure runs, then two values) is the same
    # whether those kernels load or compile.
    cache = os.environ.get("NUMBA_CACHE_DIR") or tmp_path
    script = SCRIPT.format(heavy=HEAVY, deferred=DEFERRED)
    seen = json.loads(run_python(script, numba_cache=Path(cache)))
    for step in ("import crossent", "import crossent.cli", "crossent --help"):
        assert seen[step] == [], (step, seen[step])
    assert seen["crossent report --help"] == [], seen
    # What was deferred is still there: the version (listed by dir(), read at first use).
    assert seen["dir"] is True
    printed, version = seen["crossent --version"]
    assert printed == f"crossent {version}\n"
    assert isinstance(version, str)
    assert version.strip()
    # The measures still work in that process, SciPy imported on their first call.
    assert seen["entropy"] == 1.5
    assert np.isclose(seen["kl"], 0.5 * np.log(0.5 / 0.25) + 0.5 * np.log(0.5 / 0.75))


def test_issue13_lazy_module_rebinds_its_global_on_first_use() -> None:
    # After the first read the global is the module itself: later reads cost what a
    # plain module global does (no __getattr__ call on the NumPy kernels' path).
    import json as real

    namespace: dict[str, object] = {}
    stand_in = _lazy.LazyModule("json", namespace, "codec")
    namespace["codec"] = stand_in
    assert "imported on first use" in repr(stand_in)
    assert not hasattr(stand_in, "__wrapped__")  # introspection imports nothing
    assert namespace["codec"] is stand_in
    assert stand_in.dumps([1]) == "[1]"
    assert namespace["codec"] is real
    # A stand-in no longer bound (patched over, or copied before) still forwards.
    namespace["codec"] = "patched"
    assert stand_in.loads("[2]") == [2]
    assert namespace["codec"] == "patched"


def test_issue13_rel_entr_probes_run_at_the_first_numpy_kl_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The probes moved from import time to kl_terms' first NumPy call: with a SciPy whose
    # rel_entr is the naive x log(x / y), that call must find out and repair both flaws.
    import scipy.special

    from crossent import _numerics
    from crossent._xp import compat_numpy

    def naive(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return np.where(x > 0, x * np.log(x / y), 0.0)

    monkeypatch.setattr(scipy.special, "rel_entr", naive)
    monkeypatch.setattr(_numerics, "special", scipy.special)
    monkeypatch.setattr(_numerics, "_REL_ENTR_OVERFLOWS", None)
    monkeypatch.setattr(_numerics, "_REL_ENTR_NAIVE_NEAR_ONE", None)
    p = np.array([1.0, 0.5, 0.25])
    q = np.array([1e-310, 0.5 * (1 + 2.0**-30), 0.0])
    terms = _numerics.kl_terms(p, q, xp=compat_numpy)
    assert (_numerics._REL_ENTR_OVERFLOWS, _numerics._REL_ENTR_NAIVE_NEAR_ONE) == (True, True)
    assert terms[0] == -np.log(1e-310)  # not the naive +inf
    assert terms[1] == 0.5 * np.log1p(-(2.0**-30) / (1 + 2.0**-30))  # to the last digit
    assert terms[2] == np.inf
