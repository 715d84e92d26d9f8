"""The house rules, measured: only model and training code imports JAX (planning, results, analysis
and the command line start fast and run where JAX cannot); packages import downward only, as
docs/architecture.md draws it, and no two modules import each other, even through others; and
no function or module outgrows a reader: 60 lines a function, 400 a module."""

import ast
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import scalinglab

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "scalinglab"
# The modules that may import JAX: the model and the training loop. launch.job, the job body,
# imports the training code only inside a job, after setting up its process.
JAX_MODULES = {
    "scalinglab.model.cpu_attention",
    "scalinglab.model.transformer",
    "scalinglab.training.checkpoint",
    "scalinglab.training.distributed",
    "scalinglab.training.feed",
    "scalinglab.training.loop",
    "scalinglab.training.optimizer",
    "scalinglab.training.sharding",
    "scalinglab.training.steps",
    "scalinglab.training.task_scoring",
    "scalinglab.training.throughput",
    "scalinglab.training.sampling",
    "scalinglab.training.weights",
}
MAX_FUNCTION_LINES, MAX_MODULE_LINES = 60, 400

FIRST_JAX_IMPORT = """
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
    if "jax" in sys.modules:
        print(name)
        break
"""


def all_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(scalinglab.__path__, "scalinglab."))


def test_only_model_and_training_code_imports_jax():
    modules = all_modules()
    assert JAX_MODULES <= set(modules)
    assert all(m.startswith(("scalinglab.model.", "scalinglab.training.")) for m in JAX_MODULES)
    pure = [m for m in modules if m not in JAX_MODULES]
    assert "scalinglab.launch.job" in pure and "scalinglab.training.schedules" in pure
    out = subprocess.run([sys.executable, "-c", FIRST_JAX_IMPORT, *pure], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "", f"{out.stdout.strip()} imports JAX"


CLI_WITHOUT_JAX = """
import sys
from scalinglab.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:  # --help
    code = e.code
assert "jax" not in sys.modules, "JAX was imported"
sys.exit(code)
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    return Path(shutil.copytree(ROOT / "results" / "cpu-study", tmp_path_factory.mktemp("house") / "cpu-study"))


@pytest.mark.parametrize("verb", ["--help", "plan", "prepare", "status", "fit", "plot", "suggest"])
def test_the_command_line_never_imports_jax(verb, study):
    sweep = str(ROOT / "sweeps" / "cpu-study.yaml")
    args = {"--help": ["--help"], "plan": ["plan", sweep], "prepare": ["prepare", sweep], "status": ["status", str(study)],
            "fit": ["fit", str(study), "--bootstrap", "0"], "plot": ["plot", str(study), "--bootstrap", "0"],
            "suggest": ["suggest", str(study), "--target", "C_6ND=1e16", "--budget", "2e13", "--bootstrap", "10",
                        "--out", str(study.parent / "next.yaml")]}[verb]
    out = subprocess.run([sys.executable, "-c", CLI_WITHOUT_JAX, *args], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]


def test_functions_and_modules_are_short():
    too_long = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        where = path.relative_to(SRC)
        if text.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{where}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if node.end_lineno - first + 1 > MAX_FUNCTION_LINES:
                    too_long.append(f"{where}:{node.lineno} {node.name}: {node.end_lineno - first + 1} lines")
    assert not too_long, too_long


# ---- who imports whom ---------------------------------------------------------------------------

# Each package (or top-level module) and the others it may import: docs/architecture.md's "Who may
# import what". The test holds the code to it both ways: no other arrow, and no arrow left unused.
ALLOWED = {
    "errors": set(), "choices": set(), "store": set(),
    "model": {"choices", "store"},
    "data": {"choices", "errors", "store"},
    "training": {"choices", "data", "model", "store"},
    "sweep": {"choices", "data", "errors", "model", "store", "training"},
    "launch": {"data", "errors", "model", "store", "sweep", "training"},
    "analysis": {"choices", "data", "errors", "model", "store", "sweep", "training"},
    "interop": {"data", "errors", "store", "sweep"},
    "results": {"store"},
    "commands": {"analysis", "data", "errors", "interop", "launch", "store", "sweep", "training"},
    "cli": {"errors", "store", "sweep"},  # and commands/, by name when a verb runs (importlib)
}
# Arrows that only some modules may take: JAX's packages through their one door, or only their pure modules.
ONLY_FROM = {("launch", "training"): {"scalinglab.launch.job"},  # the job body, inside the job
             ("commands", "training"): {"scalinglab.commands.sample"}}  # when it runs
PURE_ONLY = {("sweep", "model"), ("sweep", "training"), ("launch", "model"), ("analysis", "model"), ("analysis", "data"),
             ("analysis", "training")}  # the planner builds their types without JAX


def module_imports() -> dict[str, set[str]]:
    """Every scalinglab module and the scalinglab modules it imports, at its top or inside a
    function (an import deferred to when a function runs is still a dependency)."""
    modules = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]) if node.level else ""
                target = ".".join(p for p in (base, node.module) if p)
                found |= {f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        graph[name] = {m for m in found if m in modules and m != name and m.count(".") > 0}
    return graph


def package(module: str) -> str:
    return module.split(".")[1]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = stack[stack.index(v):]
            del stack[stack.index(v):]
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_cycles_are_found_through_other_modules():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e2"}, "e2": set()}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_module_imports_itself_through_others():
    found = cycles(module_imports())
    assert found == []


def test_packages_import_downward_as_docs_architecture_draws_it():
    graph = module_imports()
    arrows = {(package(m), package(t)): set() for m, targets in graph.items() for t in targets if package(m) != package(t)}
    for m, targets in graph.items():
        for t in targets:
            if package(m) != package(t):
                arrows[package(m), package(t)].add((m, t))
    assert cycles(ALLOWED) == []  # downward only: no two packages import each other, even through others
    drawn = {(a, b) for a, bs in ALLOWED.items() for b in bs}
    assert set(arrows) - drawn == set(), {k: sorted(v) for k, v in arrows.items() if k not in drawn}
    assert drawn - set(arrows) == set(), "drawn in ALLOWED and docs/architecture.md, but no module imports so"
    for (a, b), modules in ONLY_FROM.items():
        assert {m for m, _ in arrows[a, b]} <= modules, sorted(arrows[a, b])
    for a, b in PURE_ONLY:
        assert {t for _, t in arrows[a, b]}.isdisjoint(JAX_MODULES), sorted(arrows[a, b])
    commands = {(m, t) for m, targets in graph.items() for t in targets
                if m.startswith("scalinglab.commands.") and t.startswith("scalinglab.commands.")}
    assert commands == set(), "a command imports another: what they share belongs below commands/"
