"""The layout, checked by parsing imports (ast): nothing is run or imported here.

tests/, chaos/ and bench/ share one support package, tests/support/, and never import each
other's modules; tests/support/ stands on its own."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AREAS = ("tests", "chaos", "bench")
SUPPORT = "tests.support"


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(root: Path, path: Path) -> list[str]:
    name = module_name(root, path).split(".")
    return name if path.name == "__init__.py" else name[:-1]


def from_module(package: list[str], node: ast.ImportFrom) -> str:
    """The module a `from ... import` reads from, a relative one resolved against `package`."""
    if not node.level:
        return node.module
    base = ".".join(package[: len(package) - node.level + 1])
    return f"{base}.{node.module}" if node.module else base


def write_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def imported_modules(root: Path, path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) for each import in `path`, relative ones resolved, and bare names
    that only resolve through a sys.path entry inside an area (`import dashboard_data` after
    `sys.path.insert(0, "tests")`) given their area's prefix."""
    package = package_of(root, path)
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = from_module(package, node)
            if module in AREAS:  # `from tests import support`: the names are the modules
                found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, module))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    resolved = []
    for line, module in found:
        top = module.split(".")[0]
        if top not in AREAS:
            for area in AREAS:
                if (root / area / f"{top}.py").exists() or (root / area / top / "__init__.py").exists():
                    module = f"{area}.{module}"
                    break
        resolved.append((line, module))
    return resolved


def area_of(module: str) -> str | None:
    """'support' for tests.support and below, else the area (tests, chaos, bench), else None."""
    if module == SUPPORT or module.startswith(SUPPORT + "."):
        return "support"
    top = module.split(".")[0]
    return top if top in AREAS else None


def python_files(root: Path):
    for area in AREAS:
        yield from sorted(p for p in (root / area).rglob("*.py") if ".venv" not in p.parts)


def crossings(root: Path) -> list[str]:
    """Every import that crosses between tests, chaos and bench, or out of tests/support."""
    allowed = {
        "tests": {"tests", "support"},
        "chaos": {"chaos", "support"},
        "bench": {"bench", "support"},
        "support": {"support"},
    }
    found = []
    for path in python_files(root):
        here = area_of(module_name(root, path))
        for line, module in imported_modules(root, path):
            there = area_of(module)
            if there is not None and there not in allowed[here]:
                found.append(f"{path.relative_to(root)}:{line} ({here}) imports {module} ({there})")
    return found


def test_tests_chaos_and_bench_never_import_each_other():
    assert len(list(python_files(ROOT))) > 40  # the tree was read
    assert crossings(ROOT) == []


def test_tests_chaos_and_bench_all_use_the_support_package():
    users = {area: set() for area in AREAS}
    for path in python_files(ROOT):
        here = area_of(module_name(ROOT, path))
        if here != "support" and any(area_of(m) == "support" for _, m in imported_modules(ROOT, path)):
            users[here].add(path.name)
    assert all(users.values()), users


def test_the_check_sees_every_kind_of_crossing(tmp_path):
    files = {
        "tests/__init__.py": "",
        "tests/helpers.py": "",
        "tests/dashboard_data.py": "",
        "tests/support/__init__.py": "",
        "tests/support/net.py": "from ..helpers import links_in\nfrom . import seeding\n",
        "tests/support/seeding.py": "def later():\n    from chaos.support import verdict\n",
        "tests/test_ok.py": "from .support.net import free_port\nfrom .helpers import x\nimport os\n",
        "tests/test_bad.py": "from chaos import bad_scrape\n",
        "chaos/__init__.py": "",
        "chaos/support.py": "from tests.support.net import free_port\nfrom tests import support\n",
        "chaos/script.py": "from tests.helpers import make_subscriber\nfrom chaos.support import verdict\n",
        "bench/a.py": "import dashboard_data\nimport importlib\nimportlib.import_module('chaos.support')\n",
    }
    write_tree(tmp_path, files)

    found = crossings(tmp_path)

    assert found == [
        "tests/support/net.py:1 (support) imports tests.helpers (tests)",
        "tests/support/seeding.py:2 (support) imports chaos.support (chaos)",
        "tests/test_bad.py:1 (tests) imports chaos.bad_scrape (chaos)",
        "chaos/script.py:1 (chaos) imports tests.helpers (tests)",
        "bench/a.py:1 (bench) imports tests.dashboard_data (tests)",
        "bench/a.py:3 (bench) imports chaos.support (chaos)",
    ]


# --- the application: newsletter/ and subscriptions/ ----------------------------------------
#
# Function-local imports count like module-level ones: an import deferred into a function
# still makes the two modules depend on each other, it only hides the cycle from Python.
# Imports under `if TYPE_CHECKING:` never run and do not count. Migrations are left out
# (they are frozen history).

APPS = ("newsletter", "subscriptions")


def app_modules(root: Path) -> dict[str, Path]:
    return {
        module_name(root, path): path
        for app in APPS
        for path in sorted((root / app).rglob("*.py"))
        if "migrations" not in path.parts
    }


def _runtime_nodes(tree: ast.AST):
    """Every node except what sits under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from node.orelse
            continue
        yield node
        yield from _runtime_nodes(node)


def app_imports(root: Path, modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the modules of newsletter/ and subscriptions/ it imports. `from a.b import c`
    is the module a.b.c when there is one, else a.b (the names come from its __init__)."""
    graph = {}
    for name, path in modules.items():
        package = package_of(root, path)
        imported = set()
        for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                module = from_module(package, node)
                for alias in node.names:
                    imported.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in modules else module)
        graph[name] = {m for m in imported if m in modules and m != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each group of modules that import each other, directly or round a loop (Tarjan)."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in sorted(graph[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while not group or group[-1] != module:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(cycles)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """subscriptions/ (subscribers, consent, webhooks) must not depend on the paper pipeline."""
    return sorted(
        f"{module} imports {other}"
        for module, imported in graph.items()
        if module.split(".")[0] == "subscriptions"
        for other in imported
        if other.startswith(("newsletter.digests", "newsletter.scraping"))
    )


def test_no_import_cycle_in_newsletter_and_subscriptions():
    graph = app_imports(ROOT, app_modules(ROOT))
    assert len(graph) > 80 and sum(map(len, graph.values())) > 150  # the apps were read
    assert import_cycles(graph) == []


def test_subscriptions_imports_nothing_from_digests_or_scraping():
    graph = app_imports(ROOT, app_modules(ROOT))
    assert any(module.startswith("subscriptions.") for module in graph)
    assert upward_imports(graph) == []


def test_papers_are_chosen_in_one_place():
    """Sending, the dispatcher and the preview all choose through selection (which alone asks
    the ranking hook); neither the dispatcher nor the preview reaches into the sender."""
    graph = app_imports(ROOT, app_modules(ROOT))
    choosers = {"newsletter.digests.chunks", "newsletter.digests.dispatch", "newsletter.digests.preview"}
    assert all("newsletter.digests.selection" in graph[module] for module in choosers)
    assert "newsletter.digests.chunks" not in graph["newsletter.digests.dispatch"] | graph["newsletter.digests.preview"]
    # Rankings themselves (the personal one) subclass the base there; nothing else asks the hook.
    rankings = {"newsletter.personal.ranking"}
    assert {module for module, imported in graph.items() if "newsletter.digests.ranking" in imported} - rankings == {"newsletter.digests.selection"}


def test_the_app_checks_see_cycles_and_upward_imports(tmp_path):
    files = {
        "newsletter/__init__.py": "",
        "newsletter/digests/__init__.py": "",
        "newsletter/digests/dispatch.py": "def run():\n    from newsletter.tasks.digests import send\n",
        "newsletter/tasks/__init__.py": "from .digests import send\n",
        "newsletter/tasks/digests.py": "from newsletter.digests import dispatch\n",
        "newsletter/logs.py": "",
        "newsletter/scraping/__init__.py": "",
        "newsletter/migrations/0001_x.py": "from subscriptions import admin\n",
        "newsletter/typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from subscriptions import admin\n",
        "subscriptions/__init__.py": "",
        "subscriptions/admin.py": "from newsletter import logs, typed\nfrom newsletter.digests.dispatch import run\n",
        "subscriptions/views.py": "import newsletter.scraping\n",
    }
    write_tree(tmp_path, files)

    graph = app_imports(tmp_path, app_modules(tmp_path))

    assert import_cycles(graph) == [["newsletter.digests.dispatch", "newsletter.tasks.digests"]]
    assert graph["subscriptions.admin"] == {"newsletter.logs", "newsletter.typed", "newsletter.digests.dispatch"}
    assert graph["newsletter.typed"] == set()  # TYPE_CHECKING only
    assert upward_imports(graph) == [
        "subscriptions.admin imports newsletter.digests.dispatch",
        "subscriptions.views imports newsletter.scraping",
    ]
