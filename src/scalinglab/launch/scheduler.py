"""The jobs of one `scalinglab run`, followed to their end: admit() starts queued runs in free job
slots (a cooldown branch once its trunk has its branch point), reap() takes the outcome of ended
jobs, refresh() redraws the progress bar. On SLURM every run is submitted at once, as job arrays.
No JAX."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import submitit
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..store import runs
from ..store.layout import RunDir, SweepDir
from ..store.runs import Role, Status
from ..sweep.runspec import RunSpec
from ..sweep.spec import LaunchSpec
from ..sweep.types import Executor
from . import jobs
from .executors import make_executor
from .job import BUSY, TrainJob, run_job
from .resources import available_gpus, max_parallel, slot_cores, slot_gpus

POLL_S = 0.5
SACCT_POLL_S = 5.0  # submitit alone asks sacct ever more rarely, up to every 10 min
COLUMNS = (
    TextColumn("{task.description}"),
    BarColumn(),
    TextColumn("{task.percentage:>3.0f}% of FLOPs"),
    TimeElapsedColumn(),
    TextColumn("ETA"),
    TimeRemainingColumn(),
)


@dataclass
class Outcome:
    done: int = 0
    failed: int = 0
    skipped: int = 0
    cancelled: int = 0


def _size(run: RunSpec) -> str:
    return f"{run.run_id}  N={run.N:,} D={run.D:,}"


def _trunk_ready(run: RunSpec, sweep: SweepDir) -> bool | None:
    """Whether a run can start now: a cooldown branch waits for its trunk's checkpoint at its
    branch point. None: it never can, because the trunk ended without reaching it."""
    if run.trunk_id is None:
        return True
    trunk = sweep.run(run.trunk_id)
    if (trunk.branch_points / str(run.start_step)).is_dir():
        return True
    return None if runs.status(trunk) in (Status.DONE, Status.DIVERGED, Status.FAILED) else False


@dataclass
class Scheduler:
    launch: LaunchSpec
    sweep: SweepDir
    queue: list[tuple[RunSpec, RunDir]]
    """Runs to train here, longest first so that no long job runs alone at the end; trunks first."""
    elsewhere: list[tuple[RunSpec, RunDir]]
    """Runs another process is training (their lock is held): watched, trained here if it stops."""
    console: Console
    outcome: Outcome = field(default_factory=Outcome)

    def __post_init__(self) -> None:
        self.queue = sorted(self.queue, key=lambda item: (item[0].role != Role.TRUNK, -item[0].job_flops))
        self.executor = make_executor(self.launch, self.sweep.logs, len(self.queue))
        self.n_slots = max_parallel(self.launch, len(self.queue))
        self.free_slots = list(range(self.n_slots))
        self.gpus = available_gpus() if self.launch.executor == Executor.LOCAL and self.launch.gpus_per_job else []
        self.running: dict[submitit.Job[dict], tuple[RunSpec, RunDir, int | None]] = {}  # job -> (run, run_dir, slot)
        self.total_flops = sum(r.job_flops for r, _ in self.queue)
        self.finished_flops, self.last_sacct = 0.0, time.time()

    def run(self) -> Outcome:
        with Progress(*COLUMNS, console=self.console, transient=False) as progress:
            self.progress, self.task = progress, progress.add_task("", total=self.total_flops)
            if self.launch.executor == Executor.SLURM:
                self.submit_to_slurm(self.queue)
                self.queue = []
            while self.queue or self.running or self.elsewhere:
                self.recheck_elsewhere()
                self.admit()
                self.reap()
                time.sleep(POLL_S if self.running or self.elsewhere else 0)
                if self.launch.executor == Executor.SLURM and time.time() - self.last_sacct > SACCT_POLL_S:
                    submitit.SlurmJob.watcher.update()  # one sacct for all jobs: sees cancelled and killed ones
                    self.last_sacct = time.time()
                self.refresh()
        return self.outcome

    def refresh(self) -> None:
        partial = 0.0
        for run, run_dir, _ in self.running.values():  # FLOPs done so far, from the evaluations written
            metrics = runs.read_metrics(run_dir)
            partial += run.C * max(0, metrics[-1]["step"] - run.start_step) / run.steps if metrics else 0.0
        o = self.outcome
        self.progress.update(
            self.task,
            completed=self.finished_flops + partial,
            description=(f"runs {o.done} done · {len(self.running)} running or queued · {o.failed} failed · {len(self.queue)} waiting"),
        )

    def recheck_elsewhere(self) -> None:
        """Runs whose other process has ended: done by it, or to be trained here from their checkpoint."""
        for run, run_dir in [item for item in self.elsewhere if not runs.is_locked(item[1])]:
            self.elsewhere.remove((run, run_dir))
            if runs.is_complete(run_dir):
                self.outcome.skipped += 1
                self.console.print(f"[green]{runs.status(run_dir)}[/] {run.run_id}  (trained by another process)")
            elif self.launch.executor == Executor.SLURM:
                self.submit_to_slurm([(run, run_dir)])
            else:
                self.queue.append((run, run_dir))

    def admit(self) -> None:
        """Starts queued runs in free slots; a branch whose trunk ended without its branch point fails."""
        for item in list(self.queue):
            if not self.free_slots:
                break
            run, run_dir = item
            ready = _trunk_ready(run, self.sweep)
            if ready is None:
                self.queue.remove(item)
                summary = runs.record_failure(run_dir, f"trunk run {run.trunk_id} ended before step {run.start_step}")
                self._failed(run, summary)
            elif ready:
                self.queue.remove(item)
                self._start(run, run_dir, self.free_slots.pop(0))
            self.refresh()

    def _start(self, run: RunSpec, run_dir: RunDir, slot: int) -> None:
        """Starts a run in job slot `slot`. submitit hides every GPU from a local job (an empty
        CUDA_VISIBLE_DEVICES) and takes only indices: the job itself sees its slot's GPUs, by the
        names of the parent's CUDA_VISIBLE_DEVICES (indices or UUIDs)."""
        launch, visible = self.launch, None
        if launch.executor == Executor.LOCAL and launch.gpus_per_job:
            visible = slot_gpus(launch, slot, self.gpus)
        job = self.executor.submit(
            run_job,
            run.record(),
            str(run_dir.path),
            slot_cores(launch, slot, self.n_slots),
            gpus=launch.gpus_per_job,
            visible=visible,
            jobs_per_gpu=launch.jobs_per_gpu,
        )
        jobs.record_jobs(self.sweep, self.launch.executor, {run.run_id: job.job_id})
        self.running[job] = (run, run_dir, slot)

    def reap(self) -> None:
        for job in [j for j in self.running if j.done()]:
            run, run_dir, slot = self.running.pop(job)
            if slot is not None:
                self.free_slots.append(slot)
            if isinstance(job, submitit.SlurmJob) and job.state.startswith("CANCELLED"):
                self.finished_flops += run.job_flops
                self.outcome.cancelled += 1  # not failed: `scalinglab run` trains it again
                self.console.print(f"[yellow]cancelled[/] {_size(run)}")
                continue
            summary = self._result(job, run_dir)
            if summary["status"] == BUSY:  # another process took the run first: wait for it
                self.elsewhere.append((run, run_dir))
                continue
            self.finished_flops += run.job_flops
            if summary["status"] == Status.FAILED:
                self._failed(run, summary)
                continue
            self.outcome.done += 1
            L = "-" if summary["L"] is None else f"{summary['L']:.4f}"
            self.console.print(f"[green]{summary['status']}[/] {_size(run)}  L={L}  tokens/s={summary['tokens_per_s'] or 0:,.0f}")
            self.refresh()

    @staticmethod
    def _result(job, run_dir: RunDir) -> dict:
        """The job's summary (its first process's, for a run over several); a job process that died
        (killed, out of memory), any of them, is recorded as failed."""
        try:
            return job.results()[0]
        except Exception as e:
            last_line = (str(e).strip().splitlines() or [""])[-1]
            summary = runs.read_summary(run_dir)  # the job's own account, if it wrote one
            if summary and summary["status"] == Status.FAILED:
                return summary
            return runs.record_failure(run_dir, f"{type(e).__name__}: {last_line}")

    def _failed(self, run: RunSpec, summary: dict) -> None:
        self.outcome.failed += 1
        self.console.print(f"[red]failed[/] {_size(run)}: {escape(summary['error'])}")  # as written: '.[cuda]' is no markup

    def submit_to_slurm(self, items: list[tuple[RunSpec, RunDir]]) -> None:
        """Submits runs as job arrays, except runs whose earlier job is still queued or running,
        which are watched instead of trained twice. One array for trunks and independent runs,
        then one for cooldown branches that starts once the jobs it needs have ended (a branch
        fails clearly if its trunk did not get to its branch point)."""
        before = jobs.read_jobs(self.sweep)
        states = {s.run_id: s for s in jobs.run_states(self.sweep, [r.run_id for r, _ in items])}
        watched: dict[submitit.SlurmJob[dict], tuple[RunSpec, RunDir]] = {}
        new: list[tuple[RunSpec, RunDir]] = []
        for run, run_dir in items:
            state = states[run.run_id]
            if state.live and run.run_id in before and before[run.run_id]["executor"] == Executor.SLURM:
                assert state.job_id is not None  # its state names the job jobs.json holds
                watched[submitit.SlurmJob(folder=self.executor.folder, job_id=state.job_id)] = (run, run_dir)
            else:
                new.append((run, run_dir))
        if watched:
            self.console.print(f"watching {len(watched)} run(s) already queued or running: {', '.join(sorted(j.job_id for j in watched))}")
        submitted = self._submit_arrays(new, [j.job_id for j, (r, _) in watched.items() if r.trunk_id is None])
        jobs.record_jobs(self.sweep, Executor.SLURM, {r.run_id: j.job_id for j, (r, _) in submitted.items()})
        if submitted:
            array_ids = sorted({j.job_id.split("_")[0] for j in submitted})
            self.console.print(f"submitted {len(submitted)} run(s) to SLURM as job array(s) {', '.join(array_ids)}")
        self.running.update({job: (r, d, None) for job, (r, d) in {**watched, **submitted}.items()})

    def _submit_arrays(self, new: list, watched_first: list[str]) -> dict:
        job = TrainJob(self.launch.slurm.max_requeues, self.launch.gpus_per_job, self.launch.processes, self.launch.tasks_per_node)
        first = [(r, d) for r, d in new if r.trunk_id is None]
        branches = [(r, d) for r, d in new if r.trunk_id is not None]
        submitted = dict(zip(self._map_array(self.executor, job, first), first)) if first else {}
        if branches:
            before = watched_first + [j.job_id for j in submitted]
            executor = self.executor
            if before:  # on an executor of its own: the dependency must not stay for later submissions
                executor = make_executor(self.launch, self.sweep.logs, len(branches))
                extra = {**self.launch.slurm.extra, "dependency": "afterany:" + ":".join(before)}
                executor.update_parameters(slurm_additional_parameters=extra)
            submitted.update(zip(self._map_array(executor, job, branches), branches))
        return submitted

    @staticmethod
    def _map_array(executor, job: TrainJob, items: list) -> list:
        return executor.map_array(job, [r.record() for r, _ in items], [str(d.path) for _, d in items], [None] * len(items))
