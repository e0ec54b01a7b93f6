"""Which package may import which, and that no module writes another module's globals.

The check reads the source with ``ast`` and never imports it, so a forbidden import inside
a function counts as much as one at the top of the file, and a broken module cannot hide
one. ``violations(root)`` returns one line per offence: ``path:line: rule: what it found``.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("awq_ref", "kernels", "reports", "conformance", "golden")

# What kernels may use from awq_ref: the packed layouts and the quantised-weight types.
# Narrows to awq_ref.formats once that package exists.
KERNELS_MAY_IMPORT_FROM_AWQ_REF = ("awq_ref.formats", "awq_ref.primitives.quant")


@dataclass(frozen=True)
class ImportRule:
    """Files under ``scope`` (less ``exempt``) import no module under ``forbidden``, bar ``allowed``."""

    text: str
    scope: str
    forbidden: tuple[str, ...]
    allowed: tuple[str, ...] = ()
    exempt: tuple[str, ...] = ()

    def covers(self, relpath: str) -> bool:
        return _under(relpath, self.scope) and not any(_under(relpath, folder) for folder in self.exempt)

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
    return sorted(found, key=lambda text: int(text.split(":")[1]))


def imported_modules(tree: ast.AST, relpath: str) -> list[tuple[int, str]]:
    """(line, dotted name) of each import anywhere in the tree; ``from a import b`` gives ``a.b``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, relpath)
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
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
                      if _within(alias.name, PACKAGES)}
        elif isinstance(node, ast.ImportFrom) and _within(_absolute(node, relpath), PACKAGES):
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
