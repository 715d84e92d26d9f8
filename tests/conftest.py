import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

# Two test workers share the two cores (pyproject's -n 2): BLAS threads of one worker's numpy and
# scipy would spin against the other's (the varpro grid test took 7x longer). One each, set before
# numpy is imported; jobs' JAX does not use them.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import pytest  # noqa: E402
# submitit configures logging at import (logging.config.dictConfig), which closes existing
# handlers; absl's handler, created when JAX is imported during collection, would then close
# pytest's captured stderr. Importing submitit first avoids that.
import submitit  # noqa: F401, E402
import yaml  # noqa: E402


def with_sections(doc: dict, **sections) -> dict:
    """A copy of a sweep document with sections changed: a dict updates that section's keys, any
    other value replaces it."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in doc.items()}
    for key, value in sections.items():
        out[key] = {**out.get(key, {}), **value} if isinstance(value, dict) else value
    return out


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
    doc = with_sections(doc, **sections)
    path = tmp_path / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


FIGURES = {"loss_vs_N.png", "loss_vs_D.png", "loss_vs_C.png", "training_curves.png"}


def law_figures(fit: dict) -> set[str]:
    """The figures of the law of the loss that a fit.json supports (with 4 runs: power_C's)."""
    if "skipped" in fit["law"]:
        return set()
    out = {"contours.png", "residuals.png"}
    out |= {"frontier.png"} if fit["frontier"] and "skipped" not in fit["frontier"] else set()
    out |= {"extrapolation.png"} if "skipped" not in fit["extrapolation"] else set()
    return out | ({"backtest.png"} if any(e is not None for c in fit["laws"]["candidates"] for e in c["errors"]) else set())


def check_sweep(sweep_dir, n_runs=4, figures=FIGURES):
    """A sweep trained to the end: every run done, its files, evaluations, fit and figures."""
    from scalinglab import results  # noqa: PLC0415

    df = results.load(sweep_dir)
    assert len(df) == n_runs and (df["status"] == "done").all()
    assert {"run_id", "N", "N_total", "D", "C", "L", "bpb", "tokens_per_s", "n_layers", "d_model"} <= set(df.columns)
    evals = results.load(sweep_dir, per_eval=True)
    assert len(evals) == 2 * n_runs and {"step", "tokens", "L", "train_loss"} <= set(evals.columns)
    for run_dir in (sweep_dir / "runs").iterdir():
        assert {p.name for p in run_dir.iterdir()} == {"run.json", "metrics.jsonl", "summary.json", "weights.safetensors"}
    fit = json.loads((sweep_dir / "fit.json").read_text())
    assert fit["power_laws"]
    assert {p.name for p in (sweep_dir / "figures").iterdir()} == figures | law_figures(fit)
    return df


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


TRAINED_GRID = {"D": [2560, 5120, 7680, 10240, 12800]}  # 10 runs: L(N,D) fits, with 5 left if 3 are damaged


@pytest.fixture(scope="session")
def trained_sweep(tmp_path_factory) -> tuple[Path, Path]:
    """One tiny sweep (2 shapes x 5 data sizes) trained once per test session, in this process,
    for the tests that only read results: (its YAML, its results folder). Do not change it: copy
    it (trained_copy). Its tests are in test_results.py: one test worker (--dist loadfile) trains it."""
    from scalinglab.cli import main  # noqa: PLC0415

    tmp = tmp_path_factory.mktemp("trained")
    path = tiny_sweep(tmp, grid=TRAINED_GRID)
    assert main(["run", str(path), "--results", str(tmp / "res")]) == 0
    return path, tmp / "res" / "tiny"


@pytest.fixture
def trained_copy(trained_sweep, tmp_path) -> Path:
    """A copy of the session's trained sweep, this test's to change."""
    return Path(shutil.copytree(trained_sweep[1], tmp_path / "tiny"))


def tiny_runs(shapes=((1, 32, 2),), D=(4 * 32 * 60,), **sections):
    """Planned runs of a one-section-at-a-time tiny sweep: shapes (n_layers, d_model, n_heads)."""
    from scalinglab.sweep import planner, read  # noqa: PLC0415

    doc = {
        "name": "t",
        "data": {"val_tokens": 2048},
        "model": {"seq_len": 32},
        "grid": {"shapes": [{"n_layers": l, "d_model": d, "n_heads": h} for l, d, h in shapes], "D": list(D)},
        "train": {"batch_size": 4, "lr": 1e-2, "n_evals": 3},
    }
    return planner.plan(read.parse(with_sections(doc, **sections)))


def data_config(source="stdlib", path=None, tokenizer="byte", vocab_size=4096, val_fraction=0.05, text_field="text"):
    """A run's data section (as the planner makes it, without the content key)."""
    from scalinglab.data.corpus import tokenizer_vocab  # noqa: PLC0415
    from scalinglab.sweep.runspec import DataConfig  # noqa: PLC0415

    return DataConfig(source=source, path=str(path) if path else None, text_field=text_field, tokenizer=tokenizer,
                      vocab_size=tokenizer_vocab(tokenizer, vocab_size), val_fraction=val_fraction)


def model_config(n_layers, d_model, n_heads, d_ff, seq_len, vocab_size, causal=True):
    """A run's model section: standard parametrization, the causal or the masked objective."""
    from scalinglab.data.objectives import Causal, Masked  # noqa: PLC0415
    from scalinglab.model.parametrization import SP  # noqa: PLC0415
    from scalinglab.sweep.runspec import ModelConfig  # noqa: PLC0415

    objective = Causal() if causal else Masked(mask_fraction=0.15)
    return ModelConfig(n_layers, d_model, n_heads, d_ff, seq_len, vocab_size, SP(), objective)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory, worker_id):
    """A real single-node SLURM with accounting (tests/slurm/cluster.sh), 4 CPUs on this machine's
    cores. SLURM_CONF points at it for this process and its children. Never skipped: a machine
    where it cannot start fails the tests that need it (.ci/run installs SLURM). One cluster for
    the test workers together (test_slurm.py and test_distributed.py may run at once): the first
    to need it starts it, the last done with it stops it."""
    from scalinglab.store.files import locked  # noqa: PLC0415

    shared = tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    users, script = shared / "slurm-users.json", Path(__file__).parent / "slurm" / "cluster.sh"
    with locked(shared / "slurm.lock"):
        state = json.loads(users.read_text()) if users.exists() else {"users": 0, "starts": 0}
        base = shared / f"slurm-{state['starts']}"
        if state["users"] == 0:
            state["starts"] += 1
            base = shared / f"slurm-{state['starts']}"
            started = subprocess.run([str(script), "start", str(base), "4"], capture_output=True, text=True, timeout=300)
            assert started.returncode == 0, f"SLURM did not start: {started.stderr.strip()}"
        state["users"] += 1
        users.write_text(json.dumps(state))
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(base / "etc" / "slurm.conf")
    try:
        yield base
    finally:
        with locked(shared / "slurm.lock"):
            state = json.loads(users.read_text())
            state["users"] -= 1
            users.write_text(json.dumps(state))
            if state["users"] == 0:
                subprocess.run([str(script), "stop", str(base)], timeout=300)
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old


_JOB = """
import json, os, signal, sys
from scalinglab.launch.job import run_job

def started(trainer):  # the test's kill point: a hook that checkpoints at that step, then SIGKILL
    if len(sys.argv) > 3:
        from scalinglab.training.loop import Hook
        kill_at, checkpoint = int(sys.argv[3]), next(h for h in trainer.hooks if h.name == "checkpoint")
        trainer.hooks.append(Hook("kill", lambda step: step == kill_at,
                                  lambda step: (checkpoint.fn(step), os.kill(os.getpid(), signal.SIGKILL))))

print(json.dumps(run_job(json.loads(sys.argv[1]), sys.argv[2], [0], started=started)))
"""


def start_job(record: dict, run_path: Path, kill_after_checkpoint: int | None = None, env: dict | None = None) -> subprocess.Popen:
    """The job body in a fresh process pinned to core 0, like a local job: its XLA flags and
    thread count are a job's, whatever this test process has already set up. With
    kill_after_checkpoint, the job saves its checkpoint at that step, then kills itself (SIGKILL);
    env: environment variables set for it."""
    Path(run_path).mkdir(parents=True, exist_ok=True)
    kill = [] if kill_after_checkpoint is None else [str(kill_after_checkpoint)]
    command = [sys.executable, "-c", _JOB, json.dumps(record), str(run_path), *kill]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def finish(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(autouse=True)
def _close_figures():
    """Figures a test built to read (analysis.plot.figures) are closed after it."""
    yield
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")


CHROMIUM = "/usr/bin/chromium"  # Debian's package (.ci/run installs it)
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    """A real headless Chromium (Debian's, driven by Playwright) that the pages are opened in."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415  (only the page tests need it)

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield b
        b.close()
