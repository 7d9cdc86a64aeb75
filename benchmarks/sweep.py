"""Plans and sweeps: every run behind the tables, as data, launched through submitit.

A *plan* (``benchmarks/plans/<name>.py``, an mmengine config file) names a profile, seeds, threads
and time limit per run, and groups of runs (methods x nets x targets x [declared grid points] x
variants x seeds, with a study; `controls=True` runs each method's declared controls, a list of
names only those). ``expand`` turns it into ``RunSpec``s; ``pending`` says which of them lack a
finished result file from this code and config, and why; ``launch`` runs those through submitit:

- ``local``: at most ``cores // threads`` runs at once, each a subprocess (submitit's
  ``LocalExecutor`` starts every job it is given at once, so jobs are handed to it as slots free up),
  each with the plan's time limit;
- ``slurm``: one job array with ``slurm_array_parallelism`` as its cap;
- ``debug``: in this process, one after another.

Each job is a ``RunJob``, a ``submitit.helpers.Checkpointable``: on a time-out or preemption signal
submitit pickles it and requeues it (``checkpoint`` resubmits the same call), and the requeued run
resumes from the run's stage checkpoints in the work dir.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import submitit
import torch
from mmengine.config import Config
from submitit.helpers import Checkpointable

from udabench import datasets as data_registry

from .engine import method_code_version
from .results import machine
from .runner import RunSpec, compose_config, data_source_label, result_path, run, run_points
from .tables import cpu_kind
from .tasks import TASKS, task_of

PLAN_DIR = Path(__file__).resolve().parent / 'plans'
GROUP_KEYS = {'table', 'methods', 'nets', 'targets', 'seeds', 'study', 'grid', 'controls', 'variants'}


def plan_names() -> list[str]:
    return sorted(p.stem for p in PLAN_DIR.glob('*.py') if not p.stem.startswith('_'))


def load_plan(name: str) -> Config:
    """A plan by name (``cpu``, ``smoke``) or by path to a plan file."""
    path = Path(name) if name.endswith('.py') else PLAN_DIR / f'{name}.py'
    if not path.exists():
        raise KeyError(f'unknown plan {name!r}; known: {", ".join(plan_names())} (or a path to a .py plan file)')
    plan = Config.fromfile(path)
    for key in ('profile', 'seeds', 'groups'):
        if key not in plan:
            raise ValueError(f'plan {path} lacks {key!r}')
    for i, group in enumerate(plan.groups):
        unknown = set(group) - GROUP_KEYS
        if unknown or not {'methods', 'nets', 'targets'} <= set(group):
            raise ValueError(f'plan {path}, group {i}: expected keys methods, nets, targets and optionally '
                             f'{sorted(GROUP_KEYS - {"methods", "nets", "targets"})}; got {sorted(group)}')
    return plan


def expand(plan: Config, tables: list[str] | None = None, **spec_kwargs) -> list[RunSpec]:
    """Every run of ``plan``, in plan order, without duplicates; ``spec_kwargs`` go to each RunSpec
    (data_root, results_dir, work_dir, ...). A grid point whose composed config is that of a planned
    untagged run (same study, method, net, target, seed and variant: the method's default is one of
    its grid points) is not made twice: that run stands for it (``tables.grid_table`` names it).
    ``tables``: only the runs standing for the points of the groups whose ``table`` is named, chosen
    after de-duplicating the whole plan, so that a selection plans no run the whole plan would not."""
    return [spec for _, spec in expand_by_table(plan, tables, **spec_kwargs)]


def expand_by_table(plan: Config, tables: list[str] | None = None, **spec_kwargs) -> list[tuple[str, RunSpec]]:
    """``expand``'s runs, each with the ``table`` of the first group that plans it (a grid point that a
    default run stands for: the default run's group)."""
    known = [group.get('table', '') for group in plan.groups]
    unknown = [t for t in tables or [] if t not in known]
    if unknown:
        raise ValueError(f'--table: the plan has no group for {unknown}; its tables: {sorted(set(known))}')
    runs, owners, configs, selected = {}, {}, {}, set()
    for group in plan.groups:
        for method in group['methods']:
            for net in group['nets']:
                for variant in group.get('variants') or [dict(tag='', set={})]:
                    overrides = dict(variant.get('set', {}))
                    controls = group.get('controls', False)
                    points = run_points(compose_config(method, net, plan.profile, overrides), group.get('grid', False),
                                        bool(controls))
                    if isinstance(controls, (list, tuple)):
                        unknown = set(controls) - {name for name, _ in points}
                        if unknown:
                            raise ValueError(f'plan group for {method}: no control named {sorted(unknown)}; '
                                             f'declared: {[name for name, _ in points]}')
                        points = [(name, point) for name, point in points if name in controls]
                    digests = {name: json.dumps(composed_config(method, net, plan.profile, {**overrides, **point}),
                                                sort_keys=True) for name, point in points}
                    for target in group['targets']:
                        for seed in group.get('seeds', plan.seeds):
                            for name, point in points:
                                tag = '_'.join(t for t in (variant.get('tag', ''), name) if t)
                                spec = RunSpec(method=method, target=target, net=net, profile=plan.profile,
                                               seed=seed, overrides={**overrides, **point}, tag=tag,
                                               study=group.get('study', 'main'), progress=False, **spec_kwargs)
                                key, same = run_key(spec), (plan.profile, spec.study, method, target, net, seed,
                                                            digests[name])
                                if not tables or group.get('table', '') in tables:
                                    selected.add(same)
                                planned, planned_point = configs.setdefault(same, (key, bool(name)))
                                if planned != key:
                                    if name or not planned_point:
                                        continue                     # made by the run planned for this config
                                    del runs[planned]                # the untagged run stands for that point
                                    configs[same] = (key, False)
                                runs.setdefault(key, spec)
                                owners.setdefault(key, group.get('table', ''))
    wanted = {configs[same][0] for same in selected}
    return [(owners[key], spec) for key, spec in runs.items() if key in wanted]


def composed_config(method: str, net: str, profile: str, overrides: dict) -> dict:
    """The composed config of a run as its result file stores it (JSON types)."""
    return json.loads(json.dumps(compose_config(method, net, profile, overrides).to_dict(), default=str))


def run_key(spec: RunSpec) -> str:
    """The identity of a run in a plan: what names its result file."""
    return '/'.join((spec.profile, spec.study, spec.method, spec.target, spec.net, f'seed{spec.seed}', spec.tag))


def shard(runs: list[RunSpec], index: int, count: int) -> list[RunSpec]:
    """Shard ``index`` of ``count`` (0-based), by a hash of each run key: the same on every machine
    and independent of the plan's order or of the other runs in it."""
    if not 0 <= index < count:
        raise ValueError(f'--shard expects i/N with 0 <= i < N, got {index}/{count}')
    return [s for s in runs if int(hashlib.sha1(run_key(s).encode()).hexdigest(), 16) % count == index]


def expected_result(spec: RunSpec) -> Path:
    """The result file ``spec`` writes, without loading any data."""
    kinds = [SimpleNamespace(data_source=data_registry.resolve(name, spec.data_root)[1])
             for name in (TASKS[task_of(spec.target)]['source'], spec.target)]
    return result_path(spec, data_source_label(*kinds))


def pending(runs: list[RunSpec], threads: int | None = None) -> dict[str, str]:
    """Run key -> ``why_pending`` of each run of ``runs`` without a finished result from this code and
    config, in plan order; ``run`` re-makes them."""
    reasons = {run_key(s): why_pending(s, threads) for s in runs}
    return {key: why for key, why in reasons.items() if why}


def expected_config(spec: RunSpec) -> dict:
    """The composed config of ``spec`` as its result file stores it."""
    return composed_config(spec.method, spec.net, spec.profile, spec.overrides)


#: Why a run is pending, as ``why_pending`` says it; '' where it is finished.
PENDING_REASONS = ('no result file', 'unfinished', 'older code', 'other config', 'other threads')


def why_pending(spec: RunSpec, threads: int | None = None) -> str:
    """'' when ``spec``'s result file is finished (metrics, or a failure record) and made with this
    code version, this composed config and, when ``threads`` is given, that thread count; else why not
    (``PENDING_REASONS``: 'older code' is a file from another ``code_version`` of the method's code,
    'other config' one whose config file defaults have changed since)."""
    try:
        record = json.loads(expected_result(spec).read_text())
    except OSError:
        return 'no result file'
    except ValueError:
        return 'unfinished'
    if not (isinstance(record, dict) and (bool(record.get('metrics')) or record.get('status') == 'failed')):
        return 'unfinished'
    config = expected_config(spec)
    if record.get('code_version') != method_code_version(config['method']['type']):
        return 'older code'
    if record.get('config') != config:
        return 'other config'
    return 'other threads' if threads is not None and record.get('threads') != threads else ''


def other_cpu_kinds_note(runs: list[RunSpec]) -> str:
    """'' where every existing result file of ``runs`` was computed on this machine's kind of CPU
    (``tables.cpu_kind``); else a note counting the files of each other kind. A run made here shares
    neither a table cell nor a paired difference with those (one seed is another network there), so
    a re-make on this machine goes into another results dir, a whole table at a time."""
    here = cpu_kind({'machine': machine()})
    kinds, existing = Counter(), 0
    for spec in runs:
        try:
            record = json.loads(expected_result(spec).read_text())
        except (OSError, ValueError):
            continue
        existing += 1
        kinds[cpu_kind(record if isinstance(record, dict) else {})] += 1
    others = {kind: n for kind, n in sorted(kinds.items()) if kind != here}
    if not others:
        return ''
    return (f'note: this machine is {here}; {sum(others.values())} of the plan\'s {existing} result files were made '
            f'on another kind of CPU ({", ".join(f"{n} on {kind}" for kind, n in others.items())}). Runs made here '
            'share no table cell or paired difference with them (make_tables refuses the mix): re-make whole tables '
            'into another --results-dir.')


def cpu_work_dir(base: str | Path) -> Path:
    """``base``/<this machine's CPU kind> (``tables.cpu_kind``, e.g. ``work_dirs/AMD_EPYC_AVX512``): where a
    run keeps its stage checkpoints and the stages it caches for other runs (the Source Only network,
    GLSS's VAE). A stage trained on one kind of CPU is another network on another, and a work folder
    outlives its machine (a persistent disk, a cluster of mixed nodes): shared, a run would resume or
    reuse that network and its result file would name this machine. The run key holds no CPU kind (the
    result file records the machine), so the sweep's jobs and the tools that run (``run_benchmark.py``,
    ``glss_figures.py``, ``startup_check.py``) call this where the run executes."""
    return Path(base) / re.sub(r'[^0-9A-Za-z]+', '_', cpu_kind({'machine': machine()})).strip('_')


#: How a run's CPU time is estimated, most specific first: from earlier runs of its method on its
#: net, target and study; else of its method on its net (marked ``~net``); else of its method on the
#: other nets, each scaled by how much dearer this net is for the methods run on both (``~net×``, see
#: ``scaled_from_other_nets``); else of its method on any net (``~method``). A GLSS run on hand trains
#: a VAE that SNV reuses, so the target matters. A level without key fields is computed from the
#: ``~net`` level's means.
SCALED_MARK = '~net×'
ESTIMATE_LEVELS = (('', ('method', 'net', 'target', 'study', 'profile')),
                   ('~net', ('method', 'net', 'profile')),
                   (SCALED_MARK, None),
                   ('~method', ('method', 'profile')))


def recorded_cpu_seconds(path: Path) -> tuple[dict, float] | None:
    """The result file at ``path`` and the CPU-seconds it recorded (measured wall time x threads; a
    run stopped and resumed: its last process); None where there is no such file or field."""
    try:
        r = json.loads(Path(path).read_text())
        return r, float(r['wall_time_s']['total']) * int(r.get('threads') or 1)
    except (OSError, ValueError, KeyError, TypeError):
        return None                # not a result file, or one from before these fields


def cpu_time_estimates(results_dir: Path) -> dict:
    """(level mark, key fields' values) -> mean CPU-seconds per run (measured wall time x threads)
    of the result files under ``results_dir``, for every level of ``ESTIMATE_LEVELS``."""
    seconds = defaultdict(list)
    for path in Path(results_dir).rglob('*.json'):
        recorded = recorded_cpu_seconds(path)
        if recorded is None:
            continue
        r, cpu_s = recorded
        for mark, fields in ESTIMATE_LEVELS:
            if fields and all(f in r for f in fields):
                seconds[(mark, tuple(r[f] for f in fields))].append(cpu_s)
    return {k: sum(v) / len(v) for k, v in seconds.items()}


def scaled_from_other_nets(spec: RunSpec, estimates: dict) -> float | None:
    """Mean over the nets ``spec``'s method has run on of its CPU-seconds there times the median, over
    the methods run on both nets, of (their mean on ``spec.net``) / (their mean on that net); None
    where no net has both. (A method's cost ratio between nets varies, 1.2-3.6 for UNet over
    DeepLabv3+ on ``cpu``, but an unscaled other net's mean is off by that whole ratio.)"""
    per_net = {key[:2]: s for (mark, key), s in estimates.items() if mark == '~net' and key[2] == spec.profile}
    scaled = []
    for (method, other), seconds in per_net.items():
        if method != spec.method or other == spec.net:
            continue
        ratios = [s / per_net[(m, other)] for (m, n), s in per_net.items()
                  if n == spec.net and m != spec.method and (m, other) in per_net]
        if ratios:
            scaled.append(seconds * statistics.median(ratios))
    return sum(scaled) / len(scaled) if scaled else None


def estimate(spec: RunSpec, estimates: dict) -> tuple[float | None, str]:
    """The CPU-seconds of ``spec`` from ``cpu_time_estimates`` at the most specific level that has
    earlier runs, and that level's mark; ``(None, '')`` where none has."""
    for mark, fields in ESTIMATE_LEVELS:
        seconds = (scaled_from_other_nets(spec, estimates) if fields is None
                   else estimates.get((mark, tuple(getattr(spec, f) for f in fields))))
        if seconds is not None:
            return seconds, mark
    return None, ''


def dry_run_report(runs: list[RunSpec], todo: list[RunSpec], results_dir: Path, cores: int, threads: int,
                   reasons: dict | None = None, table_of: dict | None = None) -> str:
    """What would run, with the estimated CPU time of each from earlier result files and, given
    ``reasons`` (run key -> ``why_pending``), why each is pending; given ``table_of`` (run key -> its
    table, ``expand_by_table``), each table's cost too (``table_costs``)."""
    estimates = cpu_time_estimates(results_dir)
    reasons = reasons or {}
    lines, total, unknown, coarse, estimated = [], 0.0, 0, defaultdict(int), {}
    for spec in todo:
        est, mark = estimate(spec, estimates)
        estimated[run_key(spec)] = est
        total += est or 0.0
        unknown += est is None
        coarse[mark] += est is not None and bool(mark)
        why = f'  ({reasons[run_key(spec)]})' if reasons.get(run_key(spec)) else ''
        lines.append(f'{run_key(spec):<90} ' + (f'{est:8.0f} CPU-s {mark}'.rstrip() if est is not None
                                                 else '       ? CPU-s') + why)
    parallel = max(1, cores // threads)
    fallbacks = ', '.join(f'{mark}: {coarse[mark]}' for mark, _ in ESTIMATE_LEVELS[1:])
    if table_of:
        lines += table_costs(runs, table_of, estimated)
    counted = Counter(reasons.get(run_key(spec), '') for spec in todo)
    why = '; '.join(f'{counted[r]} {r}' for r in PENDING_REASONS if counted[r])
    lines.append(f'{len(todo)} of {len(runs)} runs to make ({len(runs) - len(todo)} finished{"; " + why if why else ""}); '
                 f'estimated {total:.0f} CPU-s = {total / 3600:.2f} CPU-h, about {total / threads / parallel / 3600:.2f} h wall '
                 f'with {parallel} run(s) of {threads} thread(s) at once'
                 + (f'; {unknown} run(s) have no earlier result of their method (not counted)' if unknown else '')
                 + f' (mean of wall time x threads of the result files under {results_dir}: of the same method, '
                 f'net, target and study, else ({fallbacks} runs) of the method on the net, on other nets scaled by '
                 f'the net cost ratio of the methods run on both, on any net)')
    return '\n'.join(lines)


def table_costs(runs: list[RunSpec], table_of: dict, estimated: dict) -> list[str]:
    """Lines of a table: per plan table (``table_of``: run key -> table, in plan order) its runs, those
    among them to make (``estimated``: run key -> CPU-seconds or None, of each run to make), the
    CPU-hours its result files recorded, finished or not (``recorded_cpu_seconds``), and the estimated
    CPU-hours of those to make."""
    rows = defaultdict(lambda: [0, 0, 0.0, 0.0])
    for spec in runs:
        key = run_key(spec)
        recorded = recorded_cpu_seconds(expected_result(spec))
        row = rows[table_of[key] or '(no table)']
        row[0] += 1
        row[1] += key in estimated
        row[2] += recorded[1] if recorded else 0.0
        row[3] += estimated.get(key) or 0.0
    rows['all'] = [sum(column) for column in zip(*rows.values())]
    width = max(len(table) for table in rows)
    lines = ['per table (each run under the first group that plans it; recorded: wall time x threads of the '
             'result files at its runs\' paths, finished or not):',
             f'{"table":<{width}} {"runs":>6} {"to make":>8} {"recorded CPU-h":>15} {"estimated CPU-h to make":>24}']
    for table, (count, pending_count, recorded_s, estimated_s) in rows.items():
        lines.append(f'{table:<{width}} {count:>6} {pending_count:>8} {recorded_s / 3600:>15.2f} '
                     f'{estimated_s / 3600:>24.2f}')
    return lines


class RunJob(Checkpointable):
    """One run as a submitit job. On a time-out or preemption, submitit calls the inherited
    ``checkpoint``, which resubmits this same call; the requeued job resumes from the run's stage
    checkpoints (the runner's ``StageRunner``), so finished stages are not trained again."""

    def __init__(self, spec: RunSpec, threads: int = 1):
        self.spec = spec
        self.threads = threads

    def __call__(self) -> dict:
        torch.set_num_threads(self.threads)
        path = run(replace(self.spec, work_dir=str(cpu_work_dir(self.spec.work_dir))))
        return dict(key=run_key(self.spec), result=str(path), metrics=json.loads(Path(path).read_text())['metrics'])


def launch(todo: list[RunSpec], launcher: str, log_dir: Path, threads: int, timeout_min: float,
           cores: int | None = None, max_requeues: int = 3, slurm: dict | None = None,
           poll_s: float = 1.0, wait: bool = True, signal_delay_s: int | None = None) -> list[tuple[str, object]]:
    """Run ``todo`` through submitit; return (run key, job result or the exception it raised) per
    run; with ``wait=False`` (slurm only) the submitted jobs instead of their results.

    ``signal_delay_s``: how long before the time limit the job is told to checkpoint and requeue
    (default: a quarter of the limit, at most 60 s, at least 3 s: the job must exit within it,
    and a Python process with torch loaded takes a second or two to exit)."""
    if signal_delay_s is None:
        signal_delay_s = max(3, min(60, int(timeout_min * 15)))
    log_dir = Path(log_dir)
    jobs = [RunJob(spec, threads) for spec in todo]
    if not jobs:
        return []
    if launcher == 'debug':
        executor = submitit.DebugExecutor(log_dir / '%j')
        return [(run_key(job.spec), _outcome(executor.submit(job))) for job in jobs]
    if launcher == 'slurm':
        executor = submitit.SlurmExecutor(log_dir / '%j', max_num_timeout=max_requeues)
        executor.update_parameters(**slurm_parameters(threads, timeout_min, signal_delay_s, slurm or {}))
        with executor.batch():                          # one job array
            submitted = [executor.submit(job) for job in jobs]
        return [(run_key(job.spec), _outcome(s) if wait else s) for job, s in zip(jobs, submitted)]
    if launcher != 'local':
        raise ValueError(f'unknown launcher {launcher!r}; expected local, slurm or debug')
    executor = submitit.LocalExecutor(log_dir / '%j', max_num_timeout=max_requeues)
    executor.update_parameters(timeout_min=timeout_min, signal_delay_s=signal_delay_s)
    parallel = max(1, (cores or os.cpu_count() or 1) // threads)
    queue, running, out = list(jobs), [], {}
    # The job processes inherit the environment: ``threads`` BLAS/OpenMP threads each.
    with submitit.helpers.environment_variables(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads):
        try:
            while queue or running:
                while queue and len(running) < parallel:
                    job = queue.pop(next_job_index(queue, [j for j, _ in running]))
                    running.append((job, executor.submit(job)))
                for job, sub in list(running):
                    if sub.done():
                        running.remove((job, sub))
                        out[run_key(job.spec)] = _outcome(sub)
                time.sleep(poll_s)
        except BaseException:
            # Ctrl-C or SIGTERM: the jobs would live on and keep their runs' locks; stop them.
            stop_local_jobs([sub for _, sub in running])
            raise
    return [(run_key(job.spec), out[run_key(job.spec)]) for job in jobs]


def next_job_index(queue: list[RunJob], running: list[RunJob]) -> int:
    """The queued job to start next: the first whose (seed, net, profile) no running job has, else
    the first. Runs of one seed and net share their cached stages (the Source Only network, GLSS's
    VAE): two of them started together would have the second wait on the first's stage lock with
    its core idle, while a run of another seed can train its own stages meanwhile."""
    busy = {_stage_family(job.spec) for job in running}
    return next((i for i, job in enumerate(queue) if _stage_family(job.spec) not in busy), 0)


def _stage_family(spec: RunSpec) -> tuple:
    return spec.seed, spec.net, spec.profile


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from ``/proc``; none where there is no ``/proc``)."""
    out = []
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try:
            if int(stat.read_text().rsplit(')', 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def stop_local_jobs(submitted, grace_s: float = 5.0) -> None:
    """Stop submitit local jobs: its ``cancel`` (SIGINT to each job's controller process, whose PID
    is the job id), then SIGKILL to whatever of the controller and its task processes is alive after
    ``grace_s``. ``cancel`` alone is not enough: a task in the middle of training takes the signal
    as a preemption and goes on (seen in a cpu sweep). A killed run resumes exactly from its stage
    checkpoints, and its lock (``fcntl``) dies with it."""
    pids = []
    for sub in submitted:
        controller = int(sub.job_id)
        pids += [controller, *_children(controller)]
        sub.cancel(check=False)
    deadline = time.time() + grace_s
    while time.time() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        return Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0] != 'Z'
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def slurm_parameters(threads: int, timeout_min: float, signal_delay_s: int, extra: dict) -> dict:
    """sbatch parameters of a sweep: one task of ``threads`` CPUs per run, the time limit, a USR2
    signal ``signal_delay_s`` before it (submitit then checkpoints and requeues), the array cap
    (16 unless ``extra`` says otherwise); ``extra`` overrides any of them."""
    return dict(dict(job_name='udabench', time=int(timeout_min), cpus_per_task=threads, ntasks_per_node=1,
                     signal_delay_s=signal_delay_s, array_parallelism=16,
                     setup=[f'export OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads}']), **extra)


def _outcome(submitted):
    try:
        return submitted.result()
    except Exception as err:            # noqa: BLE001 - reported per run, the sweep goes on
        return err
