"""The code's layout: modules stay small, private names stay in their module, and every analysis,
issue and ``vc_`` field has one home (its analyzer) that the operators, the panel and the CLI
read through the registry (``visual_curation.core.analyzers``) instead of listing them by hand.

Static checks of the source (AST): no database, no App."""
import ast
import inspect
import re
from pathlib import Path

import pytest

from visual_curation.core.analyzers import ANALYSES, FIELD_SPECS, ISSUES, ISSUES_FIELD, REGISTRY

REPO = Path(__file__).resolve().parents[1]
ANALYZERS = REPO / "core" / "analyzers"
MAX_LINES = 550
#: packages whose modules must stay small
SMALL = ("operators", "panels")
#: where the registry's names must not be listed by hand
CONSUMERS = ("operators", "panels", "core/cli.py")


def _modules(*parts):
    out = []
    for part in parts:
        path = REPO / part
        out += [path] if path.suffix == ".py" else sorted(path.rglob("*.py"))
    return out


def _rel(path):
    return path.relative_to(REPO).as_posix()


def _tree(path):
    return ast.parse(path.read_text(), filename=str(path))


# ------------------------------------------------------------------------------ (a) size

@pytest.mark.parametrize("package", SMALL)
def test_no_module_over_the_line_limit(package):
    big = {_rel(f): n for f in _modules(package)
           if (n := len(f.read_text().splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines (split them by concern): {big}"


# ------------------------------------------------------------------------------ (b) private names

def _private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_imports(path):
    """``(line, what)`` of each import of a private name or from a private module."""
    out = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            bad = [p for p in module.split(".") if _private(p)]
            bad += [a.name for a in node.names if _private(a.name)]
            if bad:
                out.append((node.lineno, f"from {'.' * node.level}{module} import "
                                         f"{', '.join(a.name for a in node.names)}"))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, f"import {a.name}") for a in node.names
                    if any(_private(p) for p in a.name.split("."))]
    return out


def test_private_import_detection(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text("from .analyzers import _helper\nfrom ._impl import thing\nimport x._y\n"
                    "from . import __version__\nfrom .base import Public as _alias\nimport os\n")
    assert [line for line, _ in private_imports(path)] == [1, 2, 3]


def test_no_private_name_imported_across_modules():
    found = {f"{_rel(f)}:{line}": what for f in _modules("core", "operators", "panels")
             for line, what in private_imports(f)}
    assert not found, ("private names imported from another module (make them public where "
                       f"they are defined, or keep the use in that module): {found}")


# ------------------------------------------------------------------------------ (c) one home

def _pattern(node):
    """A regex of the string a constant or f-string argument makes, else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return re.escape(node.value)
    if isinstance(node, ast.JoinedStr):
        return "".join(re.escape(v.value) if isinstance(v, ast.Constant) else ".+"
                       for v in node.values)
    return None


def definitions(path):
    """The names a module of core/analyzers defines, as regexes: ``name = "..."`` in a class
    body (an analyzer's name) and the first argument of ``FieldSpec(...)`` / ``IssueSpec(...)``
    (a field's or an issue's name, possibly an f-string such as ``f"vc_cluster_{k}"``)."""
    out = []
    tree = _tree(path)
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        for stmt in cls.body:
            if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                if any(isinstance(t, ast.Name) and t.id == "name" for t in targets) and \
                        stmt.value is not None and (p := _pattern(stmt.value)):
                    out.append(p)
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        fn = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")
        if fn in ("FieldSpec", "IssueSpec") and call.args and (p := _pattern(call.args[0])):
            out.append(p)
    return out


def _homes():
    """Each registry name → the module of core/analyzers that must define it."""
    homes = {}
    for analyzer in REGISTRY.values():
        # by file name: the package may be imported from elsewhere (an installed copy)
        module = ANALYZERS / Path(inspect.getsourcefile(type(analyzer))).name
        for name in (analyzer.name, *analyzer.fields, *(i.name for i in analyzer.issues)):
            homes[name] = module
    homes[ISSUES_FIELD.name] = ANALYZERS / "__init__.py"
    return homes


def test_every_analysis_issue_and_field_is_defined_once_in_its_analyzer():
    homes = _homes()
    assert set(homes) == set(ANALYSES) | set(ISSUES) | set(FIELD_SPECS)
    defs = {f: definitions(f) for f in _modules("core/analyzers")}
    problems = []
    for name, home in sorted(homes.items()):
        where = [f for f, pats in defs.items() if any(re.fullmatch(p, name) for p in pats)]
        if where != [home]:
            problems.append(f"{name}: defined in {[_rel(f) for f in where]}, expected "
                            f"{_rel(home)}")
    assert not problems, problems


def test_issue_and_field_names_are_written_only_in_their_analyzer():
    """Within core/analyzers, an issue's or a field's name is a string literal only in its own
    analyzer (others read the registry); analysis names may be referenced by other analyzers
    (a parameter or a planned step of another analysis)."""
    homes = _homes()
    problems = []
    for f in _modules("core/analyzers"):
        for node in ast.walk(_tree(f)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    node.value in homes and node.value not in ANALYSES and \
                    homes[node.value] != f:
                problems.append(f"{_rel(f)}:{node.lineno} {node.value!r} (its home: "
                                f"{_rel(homes[node.value])})")
    assert not problems, problems


def _docstrings(tree):
    nodes = [tree] + [n for n in ast.walk(tree)
                      if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
    return {id(n.body[0].value) for n in nodes if n.body and isinstance(n.body[0], ast.Expr)
            and isinstance(n.body[0].value, ast.Constant)}


#: how many registry names make a hand-written list: in a tuple/list/set/dict literal (two
#: fields may be read together, e.g. ``values(["vc_dup_group", "vc_duplicate"])``), in a string
IN_LITERAL = {"analyses": 2, "issues": 2, "fields": 3}
IN_TEXT = 3


def hand_written_lists(path):
    """``(line, kind, names)`` of each tuple/list/set literal (or dict keys; a comparison's
    ``in (...)`` operand is a tuple too) listing ``IN_LITERAL`` or more analysis names, issue
    names or registry fields, and of each string (not a docstring) naming ``IN_TEXT`` or more
    of them: lists the registry should give."""
    groups = {"analyses": set(ANALYSES), "issues": set(ISSUES), "fields": set(FIELD_SPECS)}
    tree = _tree(path)
    docs = _docstrings(tree)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            elts = node.elts
        elif isinstance(node, ast.Dict):
            elts = [k for k in node.keys if k is not None]
        else:
            elts = None
        if elts is not None:
            values = [e.value for e in elts if isinstance(e, ast.Constant)]
            for kind, names in groups.items():
                hit = [v for v in values if isinstance(v, str) and v in names]
                if len(hit) >= IN_LITERAL[kind]:
                    out.append((node.lineno, kind, hit))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                id(node) not in docs:
            for kind, names in groups.items():
                hit = [n for n in sorted(names)
                       if re.search(rf"(?<![\w]){re.escape(n)}(?![\w])", node.value, re.I)]
                if len(hit) >= IN_TEXT:
                    out.append((node.lineno, kind, hit))
    return out


def test_hand_written_list_detection(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text('"""Clusters, duplicates and uniqueness: a docstring may name them."""\n'
                    'A = ("clusters", "quality")\n'
                    'if x in {"blur", "dark"}: pass\n'
                    'D = {"vc_blur": 1, "vc_dark": 2, "vc_bright": 3}\n'
                    'S = "Runs clusters, duplicates, uniqueness"\n'
                    'OK = ("clusters", "vc_issues", "images")\n'
                    'v = view.values(["vc_dup_group", "vc_duplicate"])\n')
    assert sorted((line, kind) for line, kind, _ in hand_written_lists(path)) == [
        (2, "analyses"), (3, "issues"), (4, "fields"), (5, "analyses")]


@pytest.mark.parametrize("part", CONSUMERS)
def test_no_hand_written_list_of_analyses_issues_or_fields(part):
    found = {f"{_rel(f)}:{line}": (kind, names) for f in _modules(part)
             for line, kind, names in hand_written_lists(f)}
    assert not found, ("lists of analyses/issues/fields written by hand: read them from "
                       "visual_curation.core.analyzers (ANALYSES, LABEL_ANALYSES, ISSUES, "
                       f"FIELD_SPECS) instead: {found}")
