#!/usr/bin/env python
"""Make every run of a plan (benchmarks/plans/<plan>.py) that has no result file yet, then render the tables.

    python tools/sweep.py --plan cpu --dry-run          # what would run, its estimated CPU time, each table's cost
    python tools/sweep.py --plan cpu                    # local: cores // threads runs at once
    python tools/sweep.py --plan cpu --shard 0/2        # this machine's half (another runs 1/2)
    python tools/sweep.py --plan cpu --table 'Fig. 5' 'Table 4'   # only the groups behind these tables
    python tools/sweep.py --plan cpu --launcher slurm --slurm partition=cpu --slurm array_parallelism=32

Finished runs are skipped, so the command can be repeated after an interruption; an interrupted run
resumes from its stage checkpoints in --work-dir. Launchers (submitit): local (subprocesses, each with
the plan's time limit; a timed-out run is requeued), slurm (one job array; time-outs and preemptions
requeue), debug (in this process).
"""
from __future__ import annotations

import argparse
import ast
import logging
import os
import signal
import sys
from pathlib import Path

from udabench import sweep

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_tables  # noqa: E402  (the script beside this one)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--plan', default='cpu', help=f'plan name ({", ".join(sweep.plan_names())}) or a plan file')
    parser.add_argument('--launcher', default='local', choices=('local', 'slurm', 'debug'))
    parser.add_argument('--shard', default='0/1', metavar='I/N', help='run only shard I of N (0-based, by run key)')
    parser.add_argument('--table', nargs='+', metavar='NAME', help="only the plan's groups whose `table` is one of these")
    parser.add_argument('--dry-run', action='store_true', help='list the runs to make with estimated CPU time; run nothing')
    parser.add_argument('--cores', type=int, default=os.cpu_count() or 1, help='local: cores to fill (default: all)')
    parser.add_argument('--threads', type=int, help="threads per run (default: the plan's)")
    parser.add_argument('--timeout-min', type=float, help="time limit per run in minutes (default: the plan's)")
    parser.add_argument('--max-requeues', type=int, default=3, help='time-outs/preemptions a run may survive')
    parser.add_argument('--slurm', nargs='*', default=[], metavar='KEY=VALUE',
                        help='extra sbatch parameters in submitit names (partition=..., array_parallelism=..., mem_gb=...)')
    parser.add_argument('--no-wait', action='store_true', help='slurm: submit the array and exit (render tables later)')
    parser.add_argument('--data-root', default='data/real')
    parser.add_argument('--synthetic-cache', default='data/synthetic', help='where the synthetic twins and the prepared real urban sets are kept')
    parser.add_argument('--results-dir', default='results/runs')
    parser.add_argument('--work-dir', default='work_dirs', help='checkpoints, caches and submitit logs')
    parser.add_argument('--tables', default='results/tables', help='where the tables are rendered')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    signal.signal(signal.SIGTERM, _stop)      # as Ctrl-C: the launcher then stops its jobs
    try:
        plan = sweep.load_plan(args.plan)
        index, count = _shard(args.shard)
        owned = sweep.expand_by_table(plan, tables=args.table, data_root=args.data_root, results_dir=args.results_dir,
                                      work_dir=args.work_dir, synthetic_cache=args.synthetic_cache)
        runs = sweep.shard([spec for _, spec in owned], index, count)
        slurm = {k: _literal(v) for k, v in (p.split('=', 1) for p in args.slurm)}
    except (KeyError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    threads = args.threads or plan.get('threads', 1)
    timeout_min = args.timeout_min or plan.get('timeout_min', 120)
    reasons = sweep.pending(runs, threads)
    note = sweep.other_cpu_kinds_note(runs)
    if note:
        print(note)
    todo = [spec for spec in runs if sweep.run_key(spec) in reasons]
    if args.dry_run:
        table_of = {sweep.run_key(spec): table for table, spec in owned}
        print(sweep.dry_run_report(runs, todo, Path(args.results_dir), args.cores, threads, reasons, table_of))
        return 0
    print(f'plan {args.plan}, shard {args.shard}: {len(todo)} of {len(runs)} runs to make')
    try:
        outcomes = sweep.launch(todo, args.launcher, Path(args.work_dir) / 'sweep' / Path(args.plan).stem, threads,
                                timeout_min, cores=args.cores, max_requeues=args.max_requeues, slurm=slurm,
                                wait=not args.no_wait)
    except (RuntimeError, ValueError) as err:     # e.g. no srun on PATH, an unknown sbatch parameter
        print(f'error: --launcher {args.launcher}: {err}', file=sys.stderr)
        return 2
    failed = [(key, out) for key, out in outcomes if isinstance(out, Exception)]
    for key, err in failed:
        print(f'FAILED {key}: {type(err).__name__}: {err}', file=sys.stderr)
    if args.no_wait:
        print(f'submitted {len(outcomes)} runs; render the tables with tools/make_tables.py when they finish')
        return 0
    rc = make_tables.main(['--results', args.results_dir, '--out', args.tables]) if Path(args.results_dir).exists() else 0
    return 1 if failed else rc


def _stop(signum, frame):
    raise KeyboardInterrupt(f'signal {signum}')


def _shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(x) for x in text.split('/'))
    except ValueError:
        raise ValueError(f'--shard expects I/N (0-based, e.g. 0/2), got {text!r}') from None
    return index, count


def _literal(value: str):
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


if __name__ == '__main__':
    sys.exit(main())
