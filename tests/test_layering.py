"""The architecture, checked from the source: no import cycle between files or between
packages, the core knows no backend, file format or simulator, the Lava side knows no torch,
and every target's rule table covers every op."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "neurolang"

# the core: configuration, neurons, primitives, model families; knows nothing above it
CORE = ("neurolang.config", "neurolang.validation", "neurolang.neurons", "neurolang.surrogate",
        "neurolang.spikes", "neurolang.primitives", "neurolang.graph", "neurolang.models",
        "neurolang.lazy", "neurolang.seeding", "neurolang.op_table", "neurolang.metrics",
        "neurolang.errors")
ABOVE_THE_CORE = ("neurolang.backends", "neurolang.distill", "neurolang.export",
                  "neurolang.lava", "neurolang.energy", "neurolang.nir", "neurolang.cli",
                  "neurolang.teachers", "neurolang.bench", "neurolang.parity")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every neurolang module ``path`` imports, at the top or inside a function."""
    tree = ast.parse(path.read_text())
    found = set()
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("neurolang")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            if name.startswith("neurolang"):
                found.add(name)
                # `from neurolang.x import y` where y is a module of the package x
                for alias in node.names:
                    if (PACKAGE.parent / (name.replace(".", "/") + f"/{alias.name}.py")).is_file():
                        found.add(f"{name}.{alias.name}")
    return found - {here}


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports(path) if m in modules} for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def test_no_import_cycle_between_files():
    found = cycles(graph())
    assert not found, f"files that import each other: {found}"


def test_no_import_cycle_between_packages():
    packages: dict[str, set[str]] = {}
    for module, targets in graph().items():
        here = package_of(module)
        packages.setdefault(here, set()).update(package_of(t) for t in targets
                                                if package_of(t) != here)
    found = cycles(packages)
    assert not found, f"packages that import each other: {found}"


def test_the_core_knows_no_backend_format_or_simulator():
    for module, targets in graph().items():
        if module.startswith(CORE):
            above = sorted(t for t in targets if t.startswith(ABOVE_THE_CORE))
            assert not above, f"{module} (core) imports {above}"


@pytest.mark.parametrize("side", ["neurolang.nir", "neurolang.op_table", "neurolang.lava.plan",
                                  "neurolang.lava.quantise", "neurolang.lava.network",
                                  "neurolang.lava.run", "neurolang.lava.processes",
                                  "neurolang.lava.env"])
def test_the_lava_side_imports_no_torch(side):
    for path in PACKAGE.rglob("*.py"):
        if module_name(path).startswith(side):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                assert not any(n.split(".")[0] == "torch" for n in names), path


# ---- every op of every primitive is in every target's table ----------------------------------


def _tables():
    from neurolang.energy.rules import COUNTING_RULES
    from neurolang.export.export_rules import EXPORT_RULES
    from neurolang.export.import_rules import IMPORT_RULES

    return {"energy counting": COUNTING_RULES, "NIR export": EXPORT_RULES,
            "NIR import": IMPORT_RULES}


@pytest.mark.parametrize("target", ["energy counting", "NIR export", "NIR import"])
def test_every_primitive_op_has_a_rule_or_a_refusal(target):
    from neurolang.graph import GRAPH_OPS, primitive_ops

    table = _tables()[target]
    ops = primitive_ops()
    if target == "NIR import":  # the import fills modules: the graph's own nodes hold none
        ops = [op for op in ops if op not in GRAPH_OPS]
    assert table.missing(ops) == [], f"{target} has no row for {table.missing(ops)}"
    for op, reason in table.refused.items():
        assert reason.strip(), f"{target} refuses {op!r} without a reason"


def test_the_lava_plan_covers_every_node_type_the_export_writes():
    import torch

    from neurolang.config import preset
    from neurolang.export.nir_export import to_nir
    from neurolang.lava.plan_rules import PLAN_RULES
    from neurolang.models import PooledClassifierConfig, PooledSpikingClassifier, build_model
    from neurolang.nir.nodes import node_type
    from neurolang.parity import probe_batch

    elastic = {"neuron.kind": "elastic_bispike", "attention_neuron.kind": "elastic_bispike"}
    models = [build_model(preset("tiny", norm=norm, encoding=encoding, **extra))
              for norm in ("layer", "batch") for encoding in ("repeat", "heaviside")
              for extra in ({}, elastic)]
    models += [build_model(preset("tiny", block="spike_driven", encoding="repeat", norm=norm,
                                  attention=attention))
               for norm in ("layer", "batch") for attention in ("ssa", "sdsa")]
    for model in models:  # elastic amplitudes are set by a first forward pass
        model(*probe_batch(model.config, 2, 0)[:2])
    models.append(PooledSpikingClassifier(PooledClassifierConfig()))
    written = set()
    for model in models:
        graph = to_nir(model.to(torch.float64).eval())
        stack = [graph]
        while stack:
            g = stack.pop()
            for node in g.nodes.values():
                if hasattr(node, "nodes"):
                    stack.append(node)
                else:
                    written.add(node_type(node))
    assert PLAN_RULES.missing(written) == [], PLAN_RULES.missing(written)
