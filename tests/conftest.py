import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
# submitit configures logging at import (logging.config.dictConfig), which closes existing
# handlers; absl's handler, created when JAX is imported during collection, would then close
# pytest's captured stderr. Importing submitit first avoids that.
import submitit  # noqa: F401
import yaml


def tiny_sweep(tmp_path: Path, executor: str = "debug", **sections) -> Path:
    """A sweep small enough to train in seconds: 2 shapes x 2 data sizes on the stdlib corpus."""
    doc = {
        "name": "tiny",
        "data": {"val_tokens": 1024},
        "model": {"seq_len": 32},
        "grid": {
            "shapes": [{"n_layers": 1, "d_model": 16, "n_heads": 2}, {"n_layers": 1, "d_model": 32, "n_heads": 2}],
            "D": [2560, 5120],
        },
        "train": {"batch_size": 4, "lr": 1e-2, "n_evals": 2},
        "fit": {"bootstrap": 0},  # the fit at the end of `run`: intervals are tested in test_analysis
        "launch": {"executor": executor},
    }
    for key, value in sections.items():
        doc[key] = {**doc.get(key, {}), **value} if isinstance(value, dict) else value
    path = tmp_path / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(autouse=True, scope="session")
def _scalinglab_cache(tmp_path_factory):
    """Tokenized corpora and the measured CPU peak go to a folder of the test session, never ~/.cache
    (subprocesses inherit it)."""
    old = os.environ.get("SCALINGLAB_CACHE")
    os.environ["SCALINGLAB_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        del os.environ["SCALINGLAB_CACHE"]
    else:
        os.environ["SCALINGLAB_CACHE"] = old


@pytest.fixture
def sweep_file(tmp_path):
    return lambda **kw: tiny_sweep(tmp_path, **kw)


def tiny_runs(shapes=((1, 32, 2),), D=(4 * 32 * 60,), **sections):
    """Planned runs of a one-section-at-a-time tiny sweep: shapes (n_layers, d_model, n_heads)."""
    from scalinglab import planner, spec  # noqa: PLC0415

    doc = {
        "name": "t",
        "data": {"val_tokens": 2048},
        "model": {"seq_len": 32},
        "grid": {"shapes": [{"n_layers": l, "d_model": d, "n_heads": h} for l, d, h in shapes], "D": list(D)},
        "train": {"batch_size": 4, "lr": 1e-2, "n_evals": 3},
    }
    for key, value in sections.items():
        doc[key] = {**doc.get(key, {}), **value}
    return planner.plan(spec.parse(doc))


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A real single-node SLURM with accounting (tests/slurm/cluster.sh), 4 CPUs on this machine's
    cores. SLURM_CONF points at it for this process and its children. Never skipped: a machine
    where it cannot start fails the tests that need it (.ci/run installs SLURM)."""
    base = tmp_path_factory.mktemp("slurm")
    script = Path(__file__).parent / "slurm" / "cluster.sh"
    started = subprocess.run([str(script), "start", str(base), "4"], capture_output=True, text=True, timeout=300)
    try:
        assert started.returncode == 0, f"SLURM did not start: {started.stderr.strip()}"
        old = os.environ.get("SLURM_CONF")
        os.environ["SLURM_CONF"] = str(base / "etc" / "slurm.conf")
        yield base
    finally:
        subprocess.run([str(script), "stop", str(base)], timeout=300)
        if "old" in locals():
            if old is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = old


_JOB = """
import json, sys
from scalinglab.launch import run_job
summary = run_job(json.loads(sys.argv[1]), sys.argv[2], [0])
print(json.dumps(summary))
"""


def start_job(run: dict, run_path: Path) -> subprocess.Popen:
    """The job body in a fresh process pinned to core 0, like a local job: its XLA flags and
    thread count are a job's, whatever this test process has already set up."""
    Path(run_path).mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-c", _JOB, json.dumps(run), str(run_path)], stdout=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0
    return json.loads(out.strip().splitlines()[-1])
