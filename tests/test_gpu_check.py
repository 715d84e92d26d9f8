"""experiments/gpu_check.py starts on a GPU machine that has only what its docstring's `pip install`
line names (and what those packages require): every other dependency of scalinglab is made
unimportable in a fresh interpreter, which then imports everything the script imports and trains
its tiny run."""

import ast
import importlib.metadata as md
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "gpu_check.py"

BLOCKED_CHILD = """
import importlib.abc, json, sys
blocked = set(json.loads(sys.argv[1]))

class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"No module named {name!r} (blocked: not on a GPU machine gpu_check names)")
        return None

sys.meta_path.insert(0, Absent())
sys.path.insert(0, sys.argv[2])
import gpu_check
for module, names in json.loads(sys.argv[3]):
    __import__(module, fromlist=names)  # a name of a package may be a module of it: imported too
import tempfile
from scalinglab.training.loop import train
summary = train(gpu_check.tiny("fp32"), tempfile.mkdtemp(), log=lambda _: None)
print(json.dumps({"L": summary["L"], "loaded": sorted(m for m in sys.modules if m.split(".")[0] in blocked)}))
"""


def docstring_packages() -> list[str]:
    """The distributions the script's docstring tells a user to `pip install`."""
    (line,) = [ln for ln in (ast.get_docstring(ast.parse(SCRIPT.read_text())) or "").splitlines() if "pip install" in ln]
    return [Requirement(word.strip("'\"")).name for word in line.split("pip install", 1)[1].split()]


def closure(names: list[str]) -> set[str]:
    """These distributions and everything they require (their extras left out), as installed here."""
    seen, todo = set(), [canonicalize_name(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for text in md.requires(name) or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    return seen


def modules_of(distributions: set[str]) -> set[str]:
    """Top-level modules of these installed distributions."""
    return {m for m, dists in md.packages_distributions().items() if any(canonicalize_name(d) in distributions for d in dists)}


def script_imports() -> list[list]:
    """Every import of the script, at its top, inside its functions and in its child programs, as
    [module, names imported from it]."""
    tree = ast.parse(SCRIPT.read_text())
    found = {(a.name, ()) for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    found |= {(n.module, tuple(a.name for a in n.names)) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    programs = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and "import" in n.value]
    for program in programs:
        for frm, names, plain in re.findall(r"^from (\S+) import (.+)$|^import (.+)$", program, re.M):
            plain_modules = {(p.split(" as ")[0].strip(), ()) for p in plain.split(",")}
            found |= {(frm, tuple(x.strip() for x in names.split(",")))} if frm else plain_modules
    return sorted([m, list(names)] for m, names in found if m != "__future__")


def test_the_docstring_names_the_packages_and_nothing_outside_the_project():
    doc = ast.get_docstring(ast.parse(SCRIPT.read_text())) or ""
    assert docstring_packages() == ["jax", "flax", "optax", "orbax-checkpoint", "pydantic"]
    assert "/work" not in doc and ".library" not in doc and "lent" not in doc


def test_the_script_runs_without_any_dependency_its_docstring_does_not_name():
    deps = [Requirement(d).name for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]]
    allowed = closure(docstring_packages())
    unneeded = {canonicalize_name(d) for d in deps} - allowed
    assert {"rank-bm25", "safetensors", "pandas", "tokenizers", "tensorboard", "submitit"} <= unneeded  # what the test is about
    blocked = sorted(modules_of(unneeded) - modules_of(allowed) | {"wandb"})
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "JAX_PLATFORMS": "cpu"}
    args = [json.dumps(blocked), str(SCRIPT.parent), json.dumps(script_imports())]
    out = subprocess.run([sys.executable, "-c", BLOCKED_CHILD, *args], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["loaded"] == [] and result["L"] > 0
