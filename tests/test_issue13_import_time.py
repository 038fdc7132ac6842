"""``import crossent`` and the CLI's start do not import SciPy or other heavy packages.

Every ``crossent`` command and every subprocess test pays for what ``import crossent``
imports: SciPy alone cost about 0.3 s of 0.7 s (issue 13). These modules import SciPy
in the functions that need it, and ``_numerics`` through a :class:`LazyModule` global.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
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

SCRIPT = textwrap.dedent(
    """
    import contextlib, io, json, sys
    HEAVY = {heavy}
    def loaded():
        return sorted({{m.split(".")[0] for m in sys.modules}} & set(HEAVY))
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
    seen["entropy"] = float(crossent.entropy([0.5, 0.25, 0.25], base=2))
    seen["kl"] = float(crossent.kl_divergence([0.5, 0.5], [0.25, 0.75]))
    print(json.dumps(seen))
    """
)


def test_issue13_import_and_help_import_no_heavy_package(tmp_path: Path) -> None:
    seen = json.loads(run_python(SCRIPT.format(heavy=HEAVY), numba_cache=tmp_path))
    for step in ("import crossent", "import crossent.cli", "crossent --help"):
        assert seen[step] == [], (step, seen[step])
    assert seen["crossent report --help"] == [], seen
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
