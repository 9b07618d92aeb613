"""The package's surface: what `import metaexercise` gives and what it costs.

- Every name exported by `metaexercise` and `metaexercise.engine` is the function or class it names, never a
  module, whatever was imported before (an outside user's report: `from metaexercise import influence` gave
  the module `metaexercise.influence` once that module had been imported).
- `import metaexercise` and a first `metaexercise.rma(...)` load neither numba, Dask, matplotlib nor the review
  stack (the floors above the engine, openpyxl, yaml).
- Without numba (the ``scale`` extra), the batched verbs raise an ImportError that names the extra.

Each check runs in a fresh interpreter, since `sys.modules` of the test session holds everything already.
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import metaexercise
import metaexercise.engine

PACKAGE = Path(metaexercise.__file__).resolve().parent

#: What neither `import metaexercise` nor a first `rma` may load: the ``scale`` extra (numba, Dask), plots,
#: the review extra (openpyxl, yaml), the floors above the engine and the wings.
HEAVY = ("numba", "dask", "distributed", "matplotlib", "openpyxl", "yaml", "statsmodels", "metaexercise.review",
         "metaexercise.extraction", "metaexercise.publish", "metaexercise.searches", "metaexercise.plots",
         "metaexercise.commands")

FIT = "metaexercise.rma([0.1, 0.3, 0.35, 0.6], [0.01, 0.02, 0.015, 0.03])"


def run_python(code: str, tmp_path: Path) -> str:
    """Run `code` in a fresh interpreter (outside the repository, so only the installed package is seen) and
    return its stdout; fail with its stderr."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"subprocess failed:\n{proc.stderr}"
    return proc.stdout.strip().splitlines()[-1]


def loaded_after(setup: str, tmp_path: Path, names=HEAVY) -> list[str]:
    code = f"""
        import json, sys
        {setup}
        print(json.dumps(sorted(m for m in {tuple(names)!r} if m in sys.modules)))
    """
    return json.loads(run_python(code, tmp_path))


# -- names ------------------------------------------------------------------------------------------------------
def test_export_lists_agree():
    assert metaexercise.__all__[:4] == ["__version__", "ConvergenceError", "ExtractionError", "MetaexerciseError"]
    assert metaexercise.__all__[4:] == metaexercise.engine.__all__
    assert list(metaexercise.engine._EXPORTS) == metaexercise.engine.__all__
    assert set(metaexercise._ENGINE) == set(metaexercise.engine.__all__)


def test_no_exported_name_is_also_a_submodule():
    # The cause of the report: importing submodule `pkg.name` binds `name` in `pkg`, replacing the function.
    for package, names in ((metaexercise, metaexercise.__all__), (metaexercise.engine, metaexercise.engine.__all__)):
        submodules = {m.name for m in pkgutil.iter_modules(package.__path__)}
        assert not submodules & set(names), f"{package.__name__}: {sorted(submodules & set(names))}"


def test_every_engine_export_is_defined_in_its_module():
    for name, module in metaexercise.engine._EXPORTS.items():
        tree = ast.parse((PACKAGE / "engine" / f"{module}.py").read_text(encoding="utf-8"))
        bound = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
        bound |= {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names}
        assert name in bound, f"metaexercise.engine.{module} does not define {name}"


CHECK_NAMES = """
    import inspect
    import metaexercise, metaexercise.engine
    bad = [f"{m.__name__}.{n}" for m in (metaexercise, metaexercise.engine) for n in m.__all__
           if n != "__version__" and (inspect.ismodule(getattr(m, n)) or not callable(getattr(m, n)))]
    from metaexercise import cumul, influence, leave1out
    from metaexercise.engine import cumul as c2, influence as i2, leave1out as l2
    bad += [repr(f) for f in (cumul, influence, leave1out, c2, i2, l2) if not inspect.isfunction(f)]
    print(json.dumps(bad))
"""

IMPORT_ORDERS = {
    "fresh": "",
    "diagnostics module first": "import metaexercise.engine.diagnostics",
    "from-import, then the module": "from metaexercise import influence; import metaexercise.engine.diagnostics",
    "engine package first": "import metaexercise.engine; from metaexercise.engine import leave1out",
    "every engine module first": """
        import importlib, pkgutil, metaexercise.engine
        for m in pkgutil.iter_modules(metaexercise.engine.__path__):
            importlib.import_module("metaexercise.engine." + m.name)
    """,
    "every module of the package first": """
        import importlib, pkgutil, metaexercise
        for m in pkgutil.walk_packages(metaexercise.__path__, "metaexercise."):
            if m.name != "metaexercise.__main__":
                importlib.import_module(m.name)
    """,
}


@pytest.mark.parametrize("setup", list(IMPORT_ORDERS.values()), ids=list(IMPORT_ORDERS))
def test_exported_names_are_never_modules_whatever_the_import_order(setup, tmp_path):
    code = "import json\n" + textwrap.dedent(setup) + textwrap.dedent(CHECK_NAMES)
    assert json.loads(run_python(code, tmp_path)) == []


def test_dir_lists_the_exports():
    assert set(metaexercise.engine.__all__) <= set(dir(metaexercise)) and set(metaexercise.__all__) <= set(
        dir(metaexercise))
    assert set(metaexercise.engine.__all__) <= set(dir(metaexercise.engine))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        metaexercise.nope  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        metaexercise.engine.nope  # noqa: B018


# -- import cost ------------------------------------------------------------------------------------------------
def test_import_metaexercise_loads_only_the_base(tmp_path):
    code = """
        import json, sys
        before = set(sys.modules)
        import metaexercise
        print(json.dumps(sorted(set(sys.modules) - before)))
    """
    new = json.loads(run_python(code, tmp_path))
    third_party = [m for m in new if m.partition(".")[0] not in sys.stdlib_module_names
                   and m.partition(".")[0] != "metaexercise"]
    assert third_party == []
    assert [m for m in new if m.startswith("metaexercise.")] == ["metaexercise._version", "metaexercise.errors"]


def test_rma_loads_no_numba_dask_matplotlib_or_review_stack(tmp_path):
    # numba: engine/tau2.py imports it until the τ² kernels move to the shared numerical kernel (another change).
    assert loaded_after(f"import metaexercise; {FIT}", tmp_path) == []


def test_engine_light_verbs_load_no_numba_dask_matplotlib_or_review_stack(tmp_path):
    setup = f"""
        import metaexercise
        fit = {FIT}
        metaexercise.regtest(fit); metaexercise.ranktest(fit); metaexercise.trimfill(fit)
        metaexercise.influence(fit); metaexercise.leave1out(fit); metaexercise.cumul(fit); fit.confint()
        metaexercise.escalc("SMD", m1i=[1.0], sd1i=[1.0], n1i=[10], m2i=[0.5], sd2i=[1.0], n2i=[10])
        metaexercise.metareg([0.1, 0.3, 0.35, 0.6], [0.01, 0.02, 0.015, 0.03], {{"x": [1, 2, 3, 5]}})
    """
    assert loaded_after(setup, tmp_path) == []


def test_rma_needs_neither_pandas_nor_scipy_stats(tmp_path):
    # The engine's light path: a fit needs numpy and scipy.special (scipy.optimize for some τ² estimators);
    # pandas is imported when a table is built (to_frame, influence, ...).
    assert loaded_after(f"import metaexercise; {FIT}", tmp_path, ("pandas", "scipy.stats")) == []


# -- without the scale extra ------------------------------------------------------------------------------------
def test_without_numba_rma_works_and_the_batched_verbs_name_the_extra(tmp_path):
    code = f"""
        import json, sys
        sys.modules["numba"] = None  # as if numba were not installed
        import metaexercise
        fit = {FIT}
        messages = []
        for name in ("rma_batch", "permutest", "BatchControl"):
            try:
                getattr(metaexercise, name)
            except ImportError as exc:
                messages.append(str(exc))
        print(json.dumps([round(fit.estimate, 6), messages]))
    """
    estimate, messages = json.loads(run_python(code, tmp_path))
    assert isinstance(estimate, float) and len(messages) == 3
    for message in messages:
        assert "numba" in message and 'pip install "metaexercise[scale]"' in message
