"""The package's shape is its architecture: no import cycle, each layer imports only the layers below it,
and the dashboard reaches the core through its public API only. Imports are read from the source
(module level and inside functions), so a lazy import counts as much as any other."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Layers from the bottom up; a module may import its own layer and the ones below.
LAYERS = [
    {"errors", "registry", "plugins", "options", "progress", "device", "labels", "files", "seeding", "state_dict",
     "dashboard_settings", "vocabulary"},
    {"images", "classifiers", "explain_config"},
    {"infill", "objectives", "maskers", "metrics"},
    {"methods"},
    {"explanation", "datasets", "train", "evaluate", "preload"},
    {"cli"},
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules(package: str) -> dict[str, Path]:
    return {_module_name(p): p for p in (ROOT / package).rglob("*.py")}


def _imports(path: Path, known: set[str]) -> set[str]:
    """The project modules a file imports (``from pkg import submodule`` counts as the submodule)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known}
    return {m for m in out if m in known}


def _graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports. The package itself (``saliency_core/__init__.py``) is left out:
    it is the public facade above every layer, naming the API in ``TYPE_CHECKING`` imports and importing
    nothing at run time until a name is used (and every module's parent package is imported first anyway)."""
    mods = _modules("saliency_core")
    mods.pop("saliency_core")
    return {name: _imports(path, set(mods)) - {name} for name, path in mods.items()}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None
    for i, layer in enumerate(LAYERS):
        if parts[1] in layer:
            return i
    return None


def test_no_import_cycle():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_every_module_sits_in_a_layer_and_imports_only_below_it():
    graph = _graph()
    wrong = []
    for module, deps in graph.items():
        mine = _layer(module)
        if module == "saliency_core":
            continue
        assert mine is not None, f"{module} is in no layer of tests/test_architecture.py: add it where it belongs"
        for dep in deps:
            theirs = _layer(dep)
            if theirs is not None and theirs > mine:
                wrong.append(f"{module} (layer {mine}) imports {dep} (layer {theirs})")
    assert not wrong, "\n".join(wrong)


def test_the_dashboard_uses_the_public_api_only():
    mods = _modules("dashboard")
    core = set(_modules("saliency_core"))
    wrong = []
    for name, path in mods.items():
        for dep in _imports(path, core | set(mods)):
            if dep.startswith("saliency_core") and dep != "saliency_core":
                wrong.append(f"{name} imports {dep}")
    assert not wrong, "\n".join(wrong)
    import saliency_core

    for name in saliency_core.__all__:  # every public name resolves
        assert getattr(saliency_core, name) is not None, name


def _all_imports(path: Path) -> set[str]:
    """Every module a file names in an import statement, wherever the statement is (relative ones resolved
    to nothing: a file under saliency_core/ can only reach its own package that way)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_the_core_never_imports_the_app():
    """The dashboard sits on the core, never under it: nothing under saliency_core/ imports ``dashboard`` (the
    settings that ``saliency dashboard`` hands to the app are declared in the core, and the app reads them)."""
    wrong = [f"{_module_name(path)} imports {dep}" for path in (ROOT / "saliency_core").rglob("*.py")
             for dep in sorted(_all_imports(path)) if dep == "dashboard" or dep.startswith("dashboard.")]
    assert not wrong, "\n".join(wrong)


def test_the_public_api_is_one_list_that_editors_see_and_every_name_resolves():
    """``__all__`` is exactly the names of the ``TYPE_CHECKING`` imports (what editors and type checkers read),
    and each name resolves at run time to the object its module defines."""
    import importlib

    import saliency_core

    tree = ast.parse((ROOT / "saliency_core" / "__init__.py").read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    declared = {a.asname or a.name: n.module for n in block.body if isinstance(n, ast.ImportFrom) for a in n.names}
    assert sorted(saliency_core.__all__) == sorted(declared), set(saliency_core.__all__) ^ set(declared)
    assert len(set(saliency_core.__all__)) == len(saliency_core.__all__), "a name is listed twice"
    for name, module in declared.items():
        assert getattr(saliency_core, name) is getattr(importlib.import_module(module), name), name
    with __import__("pytest").raises(AttributeError, match="no attribute 'explian'"):
        saliency_core.explian  # noqa: B018 - a misspelt name is an AttributeError naming it


def test_the_method_and_infiller_registries_know_no_names_outside_their_modules():
    """No caller keeps lists of method or infiller names: the dashboard and the engine ask the registries."""
    import saliency_core as sc

    names = [n for n in sc.list_methods() + sc.list_infillers() if len(n) > 4]
    for path in list((ROOT / "dashboard").rglob("*.py")) + [ROOT / "saliency_core/methods/optimize/engine.py"]:
        text = path.read_text()
        for name in names:
            assert f'"{name}"' not in text, f"{path.relative_to(ROOT)} names '{name}'"


#: The calls that register into each registry, by the name they are called with.
_REGISTERS = {
    "METHODS": ("register_method", "METHODS.register", "METHODS.add"),
    "INFILLERS": ("register_infiller", "INFILLERS.register", "INFILLERS.add"),
    "METRICS": ("register_metric", "METRICS.register", "METRICS.add"),
    "CLASSIFIERS": ("CLASSIFIERS.register", "CLASSIFIERS.add"),
    "MASKER_KINDS": ("register_masker_kind", "MASKER_KINDS.register", "MASKER_KINDS.add"),
}


def _registries() -> dict:
    import saliency_core as sc
    from saliency_core.evaluate.metrics import METRICS
    from saliency_core.maskers.base import MASKER_KINDS

    return {"METHODS": sc.METHODS, "INFILLERS": sc.INFILLERS, "METRICS": METRICS, "CLASSIFIERS": sc.CLASSIFIERS,
            "MASKER_KINDS": MASKER_KINDS}


def test_every_registered_trait_is_declared():
    """Each registry declares its traits once (a dataclass of ``trait()`` fields): every keyword that any
    registration under saliency_core/ passes is one of them (read from the source, so a module no test imports
    counts too), and every registered entry's traits are an instance of its registry's declaration."""
    import dataclasses

    registries = _registries()
    declared = {key: {f.name for f in dataclasses.fields(reg.traits)} for key, reg in registries.items()}
    callee = {name: key for key, names in _REGISTERS.items() for name in names}
    wrong, seen = [], 0
    for path in (ROOT / "saliency_core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            key = callee.get(ast.unparse(node.func))
            if key is None:
                continue
            seen += 1
            for kw in node.keywords:
                if kw.arg is not None and kw.arg not in {"summary", "config", "defaults"} | declared[key]:
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}: trait '{kw.arg}' is not declared by "
                                 f"{key} (declared: {', '.join(sorted(declared[key]))})")
    assert seen >= 30, f"found only {seen} registrations: is the list of registering calls out of date?"
    assert not wrong, "\n".join(wrong)
    for key, reg in registries.items():
        assert reg.traits is not type(None) and declared[key], f"{key} declares no traits"
        for name, entry in reg.entries().items():
            assert isinstance(entry.traits, reg.traits), f"{key} '{name}'"
            assert entry.given <= declared[key], f"{key} '{name}' has undeclared traits {entry.given - declared[key]}"


def test_traits_are_read_typed_and_values_go_through_the_one_coercer():
    """A trait is read as ``entry.traits.<name>`` (a misspelt name is an AttributeError, where ``attrs.get`` gave
    None and the code ran on), and no command keeps a value coercer of its own beside ``options.coerce_option``."""
    wrong = []
    for package in ("saliency_core", "dashboard"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if (isinstance(node, ast.Attribute) and node.attr == "get" and isinstance(node.value, ast.Attribute)
                        and node.value.attr == "attrs"):
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}: attrs.get(...): read entry.traits.<name>")
                if isinstance(node, ast.FunctionDef) and node.name in ("_parse_bool", "_tuple", "_typed", "_none_or"):
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.name}: use options.coerce_option")
    assert not wrong, "\n".join(wrong)
