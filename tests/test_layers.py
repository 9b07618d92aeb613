"""The house's floors, read from the source with `ast` (no module is imported).

Floors, lowest first: base (the modules directly in `metaexercise/`: `__init__`, `_version`, `errors`,
`atomic`, ...) < engine < extraction < review < publish. A floor imports only its own floor or lower ones;
publish also draws its figures with the plots wing.
Wings: `searches` may import base and engine; `plots` base and engine (figures take fitted models and plain
tables, not the search machinery); `commands` (and `metaexercise/__main__.py`) anything. Every import counts:
at module level, inside functions, under ``if TYPE_CHECKING:``, and ``importlib.import_module("metaexercise...")``
with a literal name. One exception: the package root re-exports the engine's verbs, lazily (inside a
function, or for type checkers), so `from metaexercise import rma` works without loading anything above it.

A second test keeps the package self-contained: no text in it (code, comments, package data) points at files
outside the repository.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "metaexercise"

FLOORS = ("base", "engine", "extraction", "review", "publish")
WINGS = ("searches", "plots", "commands")
#: What each part may import (besides itself).
ALLOWED: dict[str, set[str]] = {floor: set(FLOORS[: i + 1]) for i, floor in enumerate(FLOORS)}
ALLOWED["publish"] |= {"plots"}  # the book draws its figures (from results/) with the plots wing
ALLOWED["searches"] = {"base", "engine", "searches"}
ALLOWED["plots"] = {"base", "engine", "plots"}
ALLOWED["commands"] = set(FLOORS) | set(WINGS)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def part_of(module: str) -> str | None:
    """The floor or wing of a module `metaexercise...` (None for an unknown subpackage)."""
    parts = module.split(".")
    if len(parts) == 1:
        return "base"
    if parts[1] == "__main__":
        return "commands"  # `python -m metaexercise`: the command line
    if (PACKAGE / f"{parts[1]}.py").is_file():
        return "base"
    return parts[1] if parts[1] in FLOORS + WINGS else None


def is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:]) if "." in name else Path()
    return (PACKAGE / rel).with_suffix(".py").is_file() or (PACKAGE / rel / "__init__.py").is_file()


def _root_engine_names() -> set[str]:
    """Names the package root takes from the engine (`from metaexercise import rma` is an engine import)."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
            names = ast.literal_eval(node.value)
            own = {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names}
            return set(names) - own
    return set()


ROOT_ENGINE_NAMES = _root_engine_names()


@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    source: str  # the statement as written
    target: str  # the metaexercise module it reaches
    lazy: bool  # inside a function or `if TYPE_CHECKING:`


def _targets(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The metaexercise modules an import statement (or literal import_module call) reaches."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "metaexercise"]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            pkg = ".".join(base + ([node.module] if node.module else []))
        else:
            pkg = node.module or ""
        if pkg.split(".")[0] != "metaexercise":
            return []
        out = []
        for alias in node.names:
            sub = f"{pkg}.{alias.name}"
            if is_module(sub):
                out.append(sub)
            elif pkg == "metaexercise" and alias.name in ROOT_ENGINE_NAMES:
                out.append("metaexercise.engine")
            else:
                out.append(pkg)
        return out
    if (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
            and node.args[0].value.split(".")[0] == "metaexercise"):
        return [node.args[0].value]
    return []


def imports_of(path: Path) -> list[Import]:
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text, filename=str(path))
    module, is_package = module_name(path), path.name == "__init__.py"
    lazy_nodes: set[int] = set()
    for node in ast.walk(tree):
        is_function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        is_type_checking = isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        if is_function or is_type_checking:
            lazy_nodes |= {id(n) for n in ast.walk(node) if n is not node}
    found = []
    for node in ast.walk(tree):
        for target in _targets(node, module, is_package):
            found.append(Import(path, node.lineno, ast.get_source_segment(text, node) or ast.unparse(node),
                                target, id(node) in lazy_nodes))
    return found


def package_files(suffix: str = ".py") -> list[Path]:
    return sorted(p for p in PACKAGE.rglob(f"*{suffix}") if "__pycache__" not in p.parts)


def test_every_module_belongs_to_a_floor_or_a_wing():
    unknown = [str(p.relative_to(ROOT)) for p in package_files() if part_of(module_name(p)) is None]
    assert not unknown, "modules outside every floor and wing (add the subpackage to FLOORS or WINGS): " + \
        ", ".join(unknown)


def test_floors_and_wings_import_only_what_they_may():
    violations = []
    for path in package_files():
        here = part_of(module_name(path))
        if here is None:
            continue
        for imp in imports_of(path):
            there = part_of(imp.target)
            if there is None or there in ALLOWED[here]:
                continue
            if path == PACKAGE / "__init__.py" and there == "engine" and imp.lazy:
                continue  # the root's lazy re-export of the engine's verbs
            violations.append(f"{path.relative_to(ROOT)}:{imp.line}: {' '.join(imp.source.split())}  "
                              f"({here} may not import {there}: {imp.target})")
    violations = list(dict.fromkeys(violations))  # one line per statement and target
    assert not violations, f"{len(violations)} import(s) against the floors:\n" + "\n".join(violations)


def test_the_layer_reader_sees_every_kind_of_import():
    # The reader itself: lazy (function, TYPE_CHECKING) and top-level imports are all found.
    imps = {(i.target, i.lazy) for i in imports_of(PACKAGE / "__init__.py")}
    assert ("metaexercise.engine", True) in imps and ("metaexercise.errors", False) in imps
    diag = {(i.target, i.lazy) for i in imports_of(PACKAGE / "engine" / "diagnostics.py")}
    assert ("metaexercise.engine.model", False) in diag


# -- nothing outside the repository ----------------------------------------------------------------------------
OUTSIDE = re.compile(
    r"\.\./shared|shared/research|(?<![\w-])seeds/"  # the project's former neighbours
    r"|(?<![\w.:/~-])/(?:work|home|Users|root|tmp|mnt|opt|srv|var|media|private)/"  # absolute paths
    r"|(?<!\w)[A-Za-z]:\\|(?<![\w/])~/"  # Windows drives, home directories
)


def _parent_depth(node: ast.AST) -> int | None:
    """How many directories `Path(__file__)....parent(s)` climbs, when the expression starts at __file__."""
    climbs, cur = 0, node
    while True:
        if isinstance(cur, ast.Subscript) and getattr(cur.value, "attr", "") == "parents" \
                and isinstance(cur.slice, ast.Constant) and isinstance(cur.slice.value, int):
            climbs += cur.slice.value + 1
            cur = cur.value.value
        elif isinstance(cur, ast.Attribute) and cur.attr == "parent":
            climbs += 1
            cur = cur.value
        elif isinstance(cur, ast.Attribute) and cur.attr in ("resolve", "absolute"):
            cur = cur.value
        elif isinstance(cur, ast.Call):
            cur = cur.func if not isinstance(cur.func, ast.Name) else (cur.args[0] if cur.args else cur.func)
        elif isinstance(cur, ast.Name) and cur.id == "__file__":
            return climbs
        else:
            return None


def test_no_text_in_the_package_points_outside_the_repository():
    found = []
    texts = [p for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts
             and p.suffix not in (".pyc", ".so", ".png", ".svg")]
    for path in sorted(texts):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        rel = path.relative_to(ROOT)
        for n, line in enumerate(text.splitlines(), start=1):
            if OUTSIDE.search(line):
                found.append(f"{rel}:{n}: {line.strip()}")
        if path.suffix == ".py":
            depth = len(rel.parts)  # Path(__file__) climbs `depth` directories to the repository root's parent
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.Attribute | ast.Subscript) and (c := _parent_depth(node)) and c > depth:
                    found.append(f"{rel}:{node.lineno}: {ast.unparse(node)} climbs {c} directories from "
                                 f"{rel.name}, above the repository root")
    assert not found, "text that points outside the repository:\n" + "\n".join(dict.fromkeys(found))


def test_the_outside_pattern_catches_what_it_should():
    for bad in ("../shared/research/notes.md", "see shared/research", "seeds/fleckenstein", "/work/main/x",
                "Path('/home/me/data')", "C:\\\\Users", "~/notes"):
        assert OUTSIDE.search(bad), bad
    for good in ("extraction/data/instruments.yaml", "https://doi.org/10.1000/xyz", "a shared arm",
                 "book/_build/html", "../CHANGELOG.md", "results/replica/"):
        assert not OUTSIDE.search(good), good
    tree = ast.parse("Path(__file__).resolve().parents[3] / 'x'\nPath(__file__).parent.parent")
    depths = sorted(d for n in ast.walk(tree) if isinstance(n, ast.Subscript | ast.Attribute)
                    and (d := _parent_depth(n)) is not None)
    assert 4 in depths and 2 in depths
