"""Which package may import which, and that no module writes another module's globals.

The check reads the source with ``ast`` and never imports it, so a forbidden import inside
a function counts as much as one at the top of the file, and a broken module cannot hide
one. ``violations(root)`` returns one line per offence: ``path:line: rule: what it found``.

Inside awq_ref the sub-packages form layers, lowest first (``AWQ_REF_LAYERS``): a sub-package
imports only from the layers below its own, so the imports run in one direction and no two
sub-packages need each other. ``errors`` (a module) counts as a sub-package; a sub-package the
table does not place is an offence, so a new one has to be given its layer.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("awq_ref", "kernels", "reports", "conformance", "golden")

# What kernels may use from awq_ref: the packed layouts (nibble order, shape tables).
KERNELS_MAY_IMPORT_FROM_AWQ_REF = ("awq_ref.formats",)


# awq_ref's sub-packages, lowest layer first; one layer may hold several that never import each other.
AWQ_REF_LAYERS = (
    ("errors", "primitives"),  # error types; quantisation maths, compute dtypes, pinned numerics
    ("formats",),              # one module per on-disk layout: tensors, shapes, its quantization_config
    ("modules", "model"),      # quantised linears and swapping them in; architecture tables and the layer walk
    ("checkpoint",),           # plans, the one writer, AWQ/GPTQ folders, the layout table, lazy reading
    ("data",),                 # default models, corpus, calibration, tiny models (cached with checkpoint.atomic)
    ("methods",),              # AWQ, GPTQ, RTN and their registry
    ("pipeline",),             # the layer-at-a-time loop, keeping layers float, refolding
    ("eval",),                 # perplexity and evaluations of methods and checkpoints
    ("mixed_precision",),      # sensitivities and keep plans (evaluates layers)
    ("cli",),                  # composes everything, and conformance and reports
)
LAYER_ORDER_TEXT = " < ".join(", ".join(layer) for layer in AWQ_REF_LAYERS)
UNPLACED_RULE = "every awq_ref sub-package has a layer in AWQ_REF_LAYERS"


def canonical(module: str) -> str:
    """A module's name as the tables here write it: without the ``awq_harness.`` import prefix
    that installed and checked-out code both use (``awq_harness.awq_ref.formats`` -> ``awq_ref.formats``)."""
    return module.removeprefix("awq_harness.") if module != "awq_harness" else module


@dataclass(frozen=True)
class ImportRule:
    """Files under ``scope`` (less ``exempt``) import no module under ``forbidden``, bar ``allowed``."""

    text: str
    scope: str
    forbidden: tuple[str, ...]
    allowed: tuple[str, ...] = ()
    exempt: tuple[str, ...] = ()

    def covers(self, relpath: str) -> bool:
        inside = _under(relpath, self.scope) or relpath == self.scope + ".py"
        return inside and not any(_under(relpath, folder) for folder in self.exempt)

    def breaks(self, module: str) -> bool:
        return _within(module, self.forbidden) and not _within(module, self.allowed)


IMPORT_RULES = (
    ImportRule("awq_ref (outside awq_ref/cli) imports neither conformance nor reports", "awq_ref",
               ("conformance", "reports"), exempt=("awq_ref/cli",)),
    ImportRule(f"kernels imports from awq_ref only {', '.join(KERNELS_MAY_IMPORT_FROM_AWQ_REF)}", "kernels",
               ("awq_ref",), allowed=KERNELS_MAY_IMPORT_FROM_AWQ_REF),
    ImportRule("kernels never imports conformance", "kernels", ("conformance",)),
    ImportRule("kernels outside kernels/bench never imports reports", "kernels", ("reports",),
               exempt=("kernels/bench",)),
    # reports.session too: a benchmark session's records are written as a results file of the
    # report's schema, so the report, its comparison and the baselines read them like any other.
    ImportRule("kernels/bench records its results through reports.collect only and writes them with "
               "reports.session", "kernels/bench", ("reports",), allowed=("reports.collect", "reports.session")),
    ImportRule("reports imports nothing from awq_ref, conformance or kernels", "reports",
               ("awq_ref", "conformance", "kernels")),
)


def layer_rules() -> tuple[ImportRule, ...]:
    """One rule per awq_ref sub-package: nothing from its own layer (bar itself) or above."""
    rules = []
    for rank, layer in enumerate(AWQ_REF_LAYERS):
        at_or_above = [name for upper in AWQ_REF_LAYERS[rank:] for name in upper]
        for name in layer:
            forbidden = tuple(f"awq_ref.{other}" for other in at_or_above if other != name)
            rules.append(ImportRule(f"awq_ref.{name} imports only the layers below it ({LAYER_ORDER_TEXT})",
                                    f"awq_ref/{name}", forbidden))
    return tuple(rules)


IMPORT_RULES += layer_rules()
GLOBALS_RULE = "no module writes another harness module's globals"


def violations(root: Path) -> list[str]:
    """Every broken rule in the packages under ``root``, sorted by file and line."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            found += file_violations(path.relative_to(root).as_posix(), path.read_text(encoding="utf-8"))
    return found


def file_violations(relpath: str, source: str) -> list[str]:
    tree = ast.parse(source, filename=relpath)
    found = []
    for line, module in imported_modules(tree, relpath):
        found += [f"{relpath}:{line}: {rule.text}: imports {module}"
                  for rule in IMPORT_RULES if rule.covers(relpath) and rule.breaks(module)]
    for line, target in foreign_global_writes(tree, relpath):
        found.append(f"{relpath}:{line}: {GLOBALS_RULE}: assigns {target}")
    unplaced = unplaced_sub_package(relpath)
    if unplaced:
        found.append(f"{relpath}:1: {UNPLACED_RULE}: {unplaced} has none")
    return sorted(found, key=lambda text: int(text.split(":")[1]))


def unplaced_sub_package(relpath: str) -> str | None:
    """The awq_ref sub-package (or top-level module) ``relpath`` is in when no layer holds it."""
    parts = relpath.split("/")
    if parts[0] != "awq_ref" or parts[1:] == ["__init__.py"]:
        return None
    name = parts[1].removesuffix(".py")
    return None if any(name in layer for layer in AWQ_REF_LAYERS) else name


def imported_modules(tree: ast.AST, relpath: str) -> list[tuple[int, str]]:
    """(line, dotted name) of each import anywhere in the tree; ``from a import b`` gives ``a.b``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, canonical(alias.name)) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, relpath)
            found += [(node.lineno, canonical(f"{base}.{alias.name}")) for alias in node.names]
    return found


def _absolute(node: ast.ImportFrom, relpath: str) -> str:
    """The module a ``from`` import reads, with a relative one resolved against ``relpath``."""
    if node.level == 0:
        return node.module
    package = relpath.split("/")[:-node.level]
    return ".".join(package + ([node.module] if node.module else []))


def foreign_global_writes(tree: ast.AST, relpath: str) -> list[tuple[int, str]]:
    """(line, target) of each ``name.ATTR = ...`` (or ``+=``) where an import bound ``name`` to a
    harness module or to something in one. Patching a third-party tool to run it is not covered."""
    imported = _harness_names_bound_by_imports(tree, relpath)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        else:
            continue
        for target in _flatten(targets):
            if isinstance(target, ast.Attribute) and _root_name(target.value) in imported:
                found.append((node.lineno, ast.unparse(target)))
    return found


def _harness_names_bound_by_imports(tree: ast.AST, relpath: str) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.asname or alias.name.split(".")[0] for alias in node.names
                      if _within(canonical(alias.name), PACKAGES)}
        elif isinstance(node, ast.ImportFrom) and (_within(canonical(_absolute(node, relpath)), PACKAGES)
                                                   or _absolute(node, relpath) == "awq_harness"):
            names |= {alias.asname or alias.name for alias in node.names}
    return names


def _flatten(targets: list) -> list[ast.AST]:
    """Assignment targets with tuple and list unpacking opened up."""
    flat = []
    for target in targets:
        if isinstance(target, (ast.Tuple, ast.List)):
            flat += _flatten(target.elts)
        else:
            flat.append(target)
    return flat


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _under(relpath: str, folder: str) -> bool:
    return relpath.startswith(folder.rstrip("/") + "/")


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)
