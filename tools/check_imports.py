"""Walk the imports of every module of the cplitool package and fail on a layering break or an import cycle.

`make lint` runs it. The layers are read from docs/development.md (the one place they are written), the
folders each installed package comes from from pyproject.toml's package-dir. Every import counts, at module
level or inside a function, except those under `if TYPE_CHECKING:`, which never run.

    python tools/check_imports.py [ROOT]     exit 1 with one line per problem, 0 when there is none
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


RULES_HEADING = "## Import rules"


@dataclass
class Rules:
    """Layers top to bottom (a module imports its own layer and those below it) and forbidden (importer, imported)."""

    layers: list[list[str]]  # each layer: the packages and modules in it
    forbidden: list[tuple[str, str]] = field(default_factory=list)

    def layer(self, module: str) -> int | None:
        """Index of the layer holding the most specific name `module` falls under; None outside every layer."""
        owners = [(len(name), i) for i, names in enumerate(self.layers) for name in names if within(module, name)]
        return max(owners)[1] if owners else None


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def read_rules(doc: Path) -> Rules:
    """The ```text block under RULES_HEADING: one layer a line (its names), then `never:` lines `A -> B C`."""
    text = doc.read_text(encoding="utf-8")
    match = re.search(re.escape(RULES_HEADING) + r".*?```text\n(.*?)```", text, re.S)
    if not match:
        raise SystemExit(f"{doc}: no ```text block under {RULES_HEADING!r}")
    rules = Rules([])
    for raw in match[1].splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("never:"):
            importer, _, imported = line.removeprefix("never:").partition("->")
            rules.forbidden += [(importer.strip(), name) for name in imported.split()]
        elif line:
            rules.layers.append(line.split())
    return rules


def package_folders(root: Path) -> dict[str, Path]:
    """Installed package name -> its folder in the clone, from pyproject.toml's package-dir."""
    setuptools = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    return {name: root / folder for name, folder in setuptools["package-dir"].items()}


def modules(root: Path) -> dict[str, Path]:
    """Every module's installed name -> its file; a folder mapped elsewhere is skipped under its parent."""
    folders = package_folders(root)
    found: dict[str, Path] = {}
    for package, folder in folders.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            owner = max((p for p in folders if within(name, p)), key=len)
            if owner == package and "__pycache__" not in parts:
                found[name] = path
    return found


def type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imported_names(tree: ast.Module, name: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, module) for every import that runs; `from a import b` names a.b as well, for submodules."""
    out: list[tuple[int, str]] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if type_checking_only(node):
            stack += getattr(node, "orelse", [])
            continue
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            out += [(node.lineno, base)] + [(node.lineno, f"{base}.{a.name}") for a in node.names]
        stack += ast.iter_child_nodes(node)
    return out


def graph(root: Path) -> tuple[dict[str, dict[str, int]], dict[str, Path]]:
    """Importer -> {imported module of the package: line}, over the package's own modules only."""
    mods = modules(root)
    edges: dict[str, dict[str, int]] = {m: {} for m in mods}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for line, target in imported_names(tree, name, path.name == "__init__.py"):
            if target in mods and target != name:
                edges[name].setdefault(target, line)
    return edges, mods


def layering_problems(edges: dict[str, dict[str, int]], files: dict[str, Path], rules: Rules, root: Path) -> list[str]:
    problems = []
    for importer, targets in sorted(edges.items()):
        mine = rules.layer(importer)
        for target, line in sorted(targets.items()):
            theirs = rules.layer(target)
            where = f"{files[importer].relative_to(root)}:{line}"
            if mine is not None and theirs is not None and theirs < mine:
                problems.append(
                    f"{where}: {importer} imports {target}, a layer above it ({' '.join(rules.layers[theirs])})"
                )
            for low, high in rules.forbidden:
                if within(importer, low) and within(target, high):
                    problems.append(f"{where}: {importer} imports {target}; {low} never imports {high}")
    return problems


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
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
    return sorted(found)


def cycle_problems(edges: dict[str, dict[str, int]]) -> list[str]:
    return [f"import cycle: {' <-> '.join(component)}" for component in cycles(edges)]


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else ".").resolve()
    edges, files = graph(root)
    problems = layering_problems(edges, files, read_rules(root / "docs" / "development.md"), root)
    problems += cycle_problems(edges)
    for problem in problems:
        print(problem)
    print(f"check_imports: {len(files)} modules, {sum(map(len, edges.values()))} imports, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
