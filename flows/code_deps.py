"""Which project code a stage runs, derived from its imports, so that dvc.yaml cannot forget a module.

A stage's code is its module plus everything it imports from the project, transitively: every
``import`` statement anywhere in a file (inside functions too, as Python would run it on some
road), and the ``__init__`` of every package on the way (importing ``a.b.c`` runs ``a`` and
``a.b`` first). The closure is read from the source with :mod:`ast`, nothing is imported.

One exception, marked on the import line with ``# code-deps: schema``: :mod:`transferlab.config`
imports the schema of every params section so that any stage can refuse bad params up front. That
decides whether a stage starts, not what it writes; a stage whose output depends on a section
imports the section's package itself (``tests/tasks/test_dag.py`` checks this for each stage's
dvc.yaml params), so following those imports would only make every stage depend on every module.

dvc.yaml lists code at the granularity a reader can check: a sub-package as its folder
(``transferlab/methods``), a module outside one as its file (``transferlab/validators.py``).
``tests/tasks/test_dag.py`` asserts that each stage's declared code deps are exactly these.

    python -m flows.code_deps          # print the derived code deps of every stage
    python -m flows.code_deps --write  # rewrite them into dvc.yaml (other deps and comments kept)
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

PROJECT_PACKAGES = ("transferlab", "tasks", "flows")
SCHEMA_PRAGMA = "# code-deps: schema"


def _module_file(root: Path, dotted: str) -> Path | None:
    base = root.joinpath(*dotted.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _package_of(root: Path, file: Path) -> str:
    rel = file.relative_to(root).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imported_names(root: Path, file: Path) -> set[str]:
    """Dotted names this file imports (absolute, with relative imports resolved); for
    ``from a import b`` both ``a`` and ``a.b`` (b may be a module or a name in a)."""
    source = file.read_text()
    lines = source.splitlines()
    tree = ast.parse(source, filename=str(file))
    module = _package_of(root, file)
    is_package = file.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and SCHEMA_PRAGMA in lines[node.lineno - 1]:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".")
                keep = len(parts) - node.level + (1 if is_package else 0)
                base = ".".join(parts[:keep] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_closure(root: Path, module: str) -> set[Path]:
    """Every project file that running ``module`` can execute, relative to ``root``."""
    root = Path(root)
    seen: set[Path] = set()
    pending = [module]
    while pending:
        dotted = pending.pop()
        if dotted.split(".")[0] not in PROJECT_PACKAGES:
            continue
        parts = dotted.split(".")
        for i in range(1, len(parts) + 1):  # the packages on the way run first
            file = _module_file(root, ".".join(parts[:i]))
            if file is None or file in seen:
                continue
            seen.add(file)
            pending.extend(_imported_names(root, file))
    return {f.relative_to(root) for f in seen}


def as_deps(files: set[Path]) -> list[str]:
    """Files folded into dvc.yaml's granularity: the sub-package folder or the top-level module file.
    A top-level package's ``__init__.py`` is listed as a file."""
    deps = set()
    for f in files:
        deps.add(str(f.parent) if len(f.parts) > 2 else str(f))
    return sorted(deps)


def stage_code_deps(root: Path, module: str) -> list[str]:
    return as_deps(import_closure(root, module))


def undeclared(root: Path, module: str, declared: list[str]) -> list[str]:
    """Project files ``module`` imports that no declared dep (a file, or a folder above it) covers."""
    clean = [d.rstrip("/") for d in declared]
    return sorted(str(f) for f in import_closure(root, module)
                  if not any(str(f) == d or str(f).startswith(d + "/") for d in clean))


def is_code_dep(dep: str) -> bool:
    return dep.split("/")[0] in PROJECT_PACKAGES


def rewrite_dvc_yaml(text: str, derived: dict[str, list[str]]) -> str:
    """dvc.yaml's text with each stage's code deps replaced by ``derived[stage]`` (first in its
    deps list); data deps, comments and everything else stay as written."""
    out: list[str] = []
    stage = None
    in_deps = False
    for line in text.splitlines():
        if m := re.match(r"^  ([\w-]+):\s*$", line):
            stage, in_deps = m.group(1), False
        elif stage and re.match(r"^    deps:\s*$", line):
            in_deps = True
            out.append(line)
            out.extend(f"      - {dep}" for dep in derived.get(stage, []))
            continue
        elif in_deps and (m := re.match(r"^      - ([^\s#]+)", line)):
            if is_code_dep(m.group(1)):
                continue
        elif in_deps:
            in_deps = False
        out.append(line)
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    from tasks.stages import STAGE_MODULES

    argv = sys.argv[1:] if argv is None else argv
    root = Path(__file__).resolve().parents[1]
    derived = {name: stage_code_deps(root, module) for name, module in STAGE_MODULES.items()}
    if argv == ["--write"]:
        dvc_yaml = root / "dvc.yaml"
        dvc_yaml.write_text(rewrite_dvc_yaml(dvc_yaml.read_text(), derived))
        return 0
    for name, deps in derived.items():
        print(f"{name}:")
        print("\n".join(f"      - {dep}" for dep in deps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
