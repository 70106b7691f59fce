"""The import structure: layers run one way and no module imports itself in a circle.

Read from the source text (nothing is imported), function-local imports included: a local import
that closes a cycle is still a cycle. The layers, lowest first:

    core                      torch-free: the theta convention, pre-processing, the model contract
    service                   gRPC service, client and CLI (core only; never training)
    training: torch parts     transform families, sampler, localisers, classifiers, model, config
    training: fitting         build, data, train, export
    training: documents       document models, synthetic pages, evaluation
    training: commands        `stn train/export/evaluate/pages`
    experiments               the paper benchmark

A module may import its own layer and those below it, with one exception: the document evaluation
reaches the service, through its pipeline, in one named module (SERVICE_GATEWAY).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "service", "training", "experiments")  # folder -> stn_align.<folder>
SERVICE_GATEWAY = "stn_align.training.documents.evaluate"
SERVICE_API = ("stn_align.service.pipeline", "stn_align.service.config")
TORCH_PARTS = ("families", "sampler", "localisers", "classifiers", "model", "config")
FITTING = ("build", "data", "train", "export")


def layer(module: str) -> tuple[str, int]:
    """(layer name, rank) of a stn_align module."""
    parts = module.split(".")
    package = parts[1]
    if package == "core":
        return "core", 0
    if package == "service":
        return "service", 1
    if package == "experiments":
        return "experiments", 6
    sub = parts[2] if len(parts) > 2 else ""
    if sub in TORCH_PARTS or not sub:  # the package's own __init__ sits at its bottom
        return "training: torch parts", 2
    if sub in FITTING:
        return "training: fitting", 3
    if sub == "cli":
        return "training: commands", 5
    return "training: documents", 4


def module_files(root: Path = ROOT) -> dict[str, Path]:
    files = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root / package).with_suffix("")
            if "proto" in rel.parts or any(p.startswith(".") for p in rel.parts):
                continue
            parts = ["stn_align", package, *rel.parts]
            if parts[-1] == "__init__":
                parts.pop()
            files[".".join(parts)] = path
    return files


def imports(path: Path, module: str, known: set[str]) -> set[str]:
    """The project modules that `module` imports anywhere in its file."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from package import module` depends on that module, not on the package's __init__
            subs = [f"{base}.{alias.name}" for alias in node.names]
            names = [n for n in subs if n in known] or [base]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    files = module_files(root)
    return {m: imports(p, m, set(files)) for m, p in files.items()}


def forbidden_imports(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, targets in sorted(graph.items()):
        name, rank = layer(module)
        for target in sorted(targets):
            target_name, target_rank = layer(target)
            if module == SERVICE_GATEWAY and target in SERVICE_API:
                continue
            upward = target_rank > rank
            # service and training both stand on core: training reaches the service only
            # through the gateway (service importing training is upward, caught above)
            sideways = target_name == "service" and name != "service"
            if upward or sideways:
                problems.append(f"{module} ({name}) imports {target} ({target_name})")
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_layers_run_one_way():
    assert forbidden_imports(import_graph()) == []


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_checks_see_a_violation():
    graph = {
        "stn_align.core.geometry": {"stn_align.service.models"},
        "stn_align.service.models": {"stn_align.core.geometry", "stn_align.training.train"},
        "stn_align.training.train": {"stn_align.training.documents.model"},
        "stn_align.training.documents.model": {"stn_align.training.train"},
    }
    problems = forbidden_imports(graph)
    assert any(p.startswith("stn_align.core.geometry (core) imports") for p in problems)
    assert any(p.startswith("stn_align.service.models (service) imports") for p in problems)
    assert any(p.startswith("stn_align.training.train (training: fitting)") for p in problems)
    assert sorted(map(tuple, cycles(graph))) == [
        ("stn_align.core.geometry", "stn_align.service.models"),
        ("stn_align.training.documents.model", "stn_align.training.train"),
    ]


def test_every_module_is_in_a_layer():
    graph = import_graph()
    assert "stn_align.core.geometry" in graph and "stn_align.service.pipeline" in graph
    assert {layer(m)[0] for m in graph} == {
        "core",
        "service",
        "training: torch parts",
        "training: fitting",
        "training: documents",
        "training: commands",
        "experiments",
    }
