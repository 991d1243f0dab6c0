"""The import rules of docs/architecture.md, read from the source: each failure names the file,
the line and the import that broke the rule.

Only module-level imports count: those run when the module is imported. An import inside a
function runs when it is called, and one under `if TYPE_CHECKING:` never runs, so neither can
slow start-up or close a cycle.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.servers import ROOT

PACKAGE = ROOT / "identity"


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, e.g. identity.cli
    target: str  # the imported identity module, e.g. identity.simulator.demo_dir
    where: str  # file:line, for the failure message

    def __str__(self) -> str:
        return f"{self.where}: {self.source} imports {self.target}"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements that run on import: not in functions, not under TYPE_CHECKING;
    class bodies, try and plain if blocks do run."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _module_level(node.body)
            yield from _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _module_level(block)
            for handler in node.handlers:
                yield from _module_level(handler.body)
        elif isinstance(node, ast.ClassDef | ast.With):
            yield from _module_level(node.body)


def _targets(source: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The identity modules one statement loads: `from identity.x import y` is identity.x.y
    when y is a module, else identity.x."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:  # relative: from the importing module's package
        package = source.split(".")
        if MODULES[source].name != "__init__.py":
            package = package[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join([*package, *([base] if base else [])])
    for alias in node.names:
        yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base


def _anywhere(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run, in functions too: not under TYPE_CHECKING."""
    never = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and _is_type_checking(node.test)
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in never:
            yield node


def imports_of(source: str, *, in_functions: bool = False) -> list[Import]:
    path = MODULES[source]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in _anywhere(tree) if in_functions else _module_level(tree.body):
        for target in _targets(source, node):
            if target == "identity" or target.startswith("identity."):
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                found.append(Import(source, target, where))
    return found


IMPORTS = [found for source in MODULES for found in imports_of(source)]
ALL_IMPORTS = [found for source in MODULES for found in imports_of(source, in_functions=True)]


def within(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def part(module: str) -> str:
    """The package or top-level module a module belongs to: identity.sso.views -> identity.sso."""
    return ".".join(module.split(".")[:2])


def broken(rule: str, bad: list[Import]) -> str:
    return f"{rule}:\n" + "\n".join(f"  {found}" for found in bad)


# --- the rules --------------------------------------------------------------------------------


def test_only_the_simulator_imports_the_simulator_at_module_level() -> None:
    """The product (cli included) loads the simulator only inside the commands that run it:
    `identity --help`, `serve` and the worker do not pay for it."""
    bad = [
        found
        for found in IMPORTS
        if within(found.target, "identity.simulator")
        and not within(found.source, "identity.simulator")
    ]
    assert not bad, broken("only identity/simulator may import the simulator at module level", bad)


def test_importing_the_cli_does_not_load_the_simulator() -> None:
    """What the rule above is for, as Python sees it: nothing imported indirectly either."""
    program = "import identity.cli, sys; print('identity.simulator' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", program], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False", "import identity.cli loaded identity.simulator"


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle in a directed graph, as the list of nodes round it, or None."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def _explain(cycle: list[str], imports: dict[tuple[str, str], Import]) -> str:
    return "\n".join(f"  {imports[step]}" for step in zip(cycle, cycle[1:], strict=False))


def test_no_import_cycle_between_modules() -> None:
    edges: dict[str, set[str]] = {}
    by_edge: dict[tuple[str, str], Import] = {}
    for found in IMPORTS:
        edges.setdefault(found.source, set()).add(found.target)
        by_edge.setdefault((found.source, found.target), found)
    cycle = _cycle(edges)
    assert cycle is None, f"an import cycle between modules:\n{_explain(cycle, by_edge)}"


def test_no_import_cycle_between_packages() -> None:
    """One level up, the layers: identity.sso and identity.provider may not import each other,
    even through different modules or inside a function (a function's import still ties the
    two packages both ways); a package's own modules may import one another when called."""
    edges: dict[str, set[str]] = {}
    by_edge: dict[tuple[str, str], Import] = {}
    for found in ALL_IMPORTS:
        source, target = part(found.source), part(found.target)
        if source != target:
            edges.setdefault(source, set()).add(target)
            by_edge.setdefault((source, target), found)
    cycle = _cycle(edges)
    assert cycle is None, f"an import cycle between packages:\n{_explain(cycle, by_edge)}"


def test_the_directory_imports_no_wing_edge_or_command() -> None:
    """Not even inside a function: the eligibility rule and everything else the edges share
    lie below them."""
    above = ("sso", "marketplace", "provider", "admin", "simulator", "cli", "app", "worker")
    bad = [
        found
        for found in ALL_IMPORTS
        if within(found.source, "identity.directory")
        and within(found.target, *(f"identity.{name}" for name in above))
    ]
    assert not bad, broken("identity/directory imports only what lies below it", bad)


def test_access_never_imports_the_provider() -> None:
    bad = [
        found
        for found in IMPORTS
        if found.source == "identity.access" and within(found.target, "identity.provider")
    ]
    assert not bad, broken("identity/access.py never imports identity/provider", bad)


def test_the_client_library_imports_nothing_of_the_server() -> None:
    """identity.client ships to the ISV's apps: it must import without the server."""
    bad = [
        found
        for found in IMPORTS
        if within(found.source, "identity.client") and not within(found.target, "identity.client")
    ]
    assert not bad, broken("identity/client imports only identity/client", bad)


def test_services_never_import_fastapi() -> None:
    """The logic stays callable from the commands, the worker and tests without a web app:
    the services, the directory and what lies below them import no web framework at all."""
    services = [m for m in MODULES if m.endswith(".service")]
    below = ["identity.access", "identity.models", "identity.db", "identity.crypto"]
    bad = []
    for source in [*services, *below, *(m for m in MODULES if within(m, "identity.directory"))]:
        tree = ast.parse(MODULES[source].read_text(encoding="utf-8"))
        for node in _anywhere(tree):
            for target in _targets(source, node):
                if within(target, "fastapi", "starlette"):
                    where = f"{MODULES[source].relative_to(ROOT)}:{node.lineno}"
                    bad.append(Import(source, target, where))
    assert not bad, broken("services never import FastAPI", bad)


def test_the_rules_see_the_imports_they_judge() -> None:
    """A reader that finds no imports would pass every rule: it must see the known ones, and
    skip those inside functions and under TYPE_CHECKING."""
    assert Import("identity.app", "identity.settings", "") in {
        Import(f.source, f.target, "") for f in IMPORTS
    }
    sample = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "import identity.db\n"
        "if TYPE_CHECKING:\n    import identity.models\n"
        "def f():\n    import identity.crypto\n"
    )
    loaded = [t for n in _module_level(sample.body) for t in _targets("identity.app", n)]
    assert loaded == ["typing", "identity.db"]
    anywhere = [t for n in _anywhere(sample) for t in _targets("identity.app", n)]
    assert sorted(anywhere) == ["identity.crypto", "identity.db", "typing"]


def test_sessions_import_no_wing_or_edge() -> None:
    """Member sessions sit below the features that use them: sso, the provider and the admin
    console import identity.sessions, never the other way round."""
    above = ("sso", "marketplace", "provider", "admin", "simulator", "cli", "app", "worker")
    bad = [
        found
        for found in ALL_IMPORTS
        if within(found.source, "identity.sessions")
        and within(found.target, *(f"identity.{name}" for name in above))
    ]
    assert not bad, broken("identity/sessions imports only what lies below it", bad)


def test_the_provider_and_the_console_use_sessions_not_the_sign_in() -> None:
    """The provider and the admin console reach a member's session through identity.sessions;
    the marketplace sign-in's own object (`Sso`) is not theirs to use."""
    bad = [
        found
        for found in ALL_IMPORTS
        if within(found.source, "identity.provider", "identity.admin")
        and found.target == "identity.sso.service"
    ]
    assert not bad, broken("identity/provider and identity/admin never import Sso", bad)


def test_no_test_module_is_a_library() -> None:
    """Tests read as one suite: what several modules share lives in conftest.py or
    tests/helpers, never in another test module, and the benchmarks import no test module."""
    bad = []
    for folder in ("tests", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = (
                    [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else [alias.name for alias in node.names]
                    if isinstance(node, ast.Import)
                    else []
                )
                for name in names:
                    if name.split(".")[-1].startswith("test_") and name.startswith("tests."):
                        bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: imports {name}")
    assert not bad, "a test module imported as a library:\n" + "\n".join(bad)
