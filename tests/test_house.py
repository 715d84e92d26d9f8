"""The house rules, measured: only model and training code imports JAX (planning, results, analysis
and the command line start fast and run where JAX cannot), and no function or module outgrows a
reader: 60 lines a function, 400 a module."""

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
            "suggest": ["suggest", str(study), "--target", "C=1e16", "--budget", "2e13", "--bootstrap", "10",
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
