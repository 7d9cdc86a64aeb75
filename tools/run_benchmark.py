#!/usr/bin/env python
"""Train, evaluate and write one result file per run (or per grid point with --grid).

    python tools/run_benchmark.py --method source_only --target hand --net unet --profile cpu

``--study controls`` runs the method's declared ``controls`` (its config file: name -> overrides,
e.g. every target weight 0 and the target weights x 100), one result file tagged with each name.

Every run (seed x grid point) is validated before any trains (exit 2 on a bad option). Then each
runs; a failed one (diverged: a failure record is written; locked by another process; unreadable
data or checkpoint) does not stop the others, and the command ends with a summary and exit 1.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from udabench.results import describe_result
from udabench.runner import (TARGETS, RunSpec, compose_config, describe_registries, run_points,
                             parse_overrides, run, run_status, validate)
from udabench.sweep import cpu_work_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--method', help='registered method name (see --list)')
    parser.add_argument('--target', choices=TARGETS + tuple(f'synth_{t}' for t in TARGETS),
                        help='target domain (snv, hand: skin from compaq; cityscapes: urban from synthia); '
                             'the real set is used when <data-root>/<target> exists')
    parser.add_argument('--net', default='deeplabv3plus', help='segmentation network (default: deeplabv3plus)')
    parser.add_argument('--profile', default='cpu', help='smoke | cpu | paper (default: cpu)')
    parser.add_argument('--seed', type=int, nargs='+', default=[0], help='one or more seeds')
    parser.add_argument('--data-root', default='data/real', help='folder holding compaq/, snv/, hand/')
    parser.add_argument('--pretrained', metavar='PATH', help='backbone weights to start from (default: random init)')
    parser.add_argument('--set', nargs='*', default=[], metavar='KEY=VALUE', help='config overrides')
    parser.add_argument('--grid', action='store_true', help="run every point of the method's grid")
    parser.add_argument('--tag', default='', help='suffix of the result file name (default: none)')
    parser.add_argument('--study', default='main',
                        help='main (Tables 1-3) or a study name (ablation, fraction, ...) kept out of the main tables; '
                             "'controls' runs the method's declared controls")
    parser.add_argument('--force', action='store_true', help='re-run even if the result file exists')
    parser.add_argument('--device', default='auto', help='auto | cpu | cuda[:N]')
    parser.add_argument('--results-dir', default='results/runs')
    parser.add_argument('--work-dir', default='work_dirs',
                        help='checkpoints and caches, in a folder per kind of CPU (<work-dir>/<cpu kind>)')
    parser.add_argument('--no-progress', action='store_true', help='hide progress bars')
    parser.add_argument('--list', action='store_true', help='list registered names and exit')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    if args.list:
        print(describe_registries())
        return 0
    if not args.method or not args.target:
        parser.error('--method and --target are required (see --list)')
    try:
        overrides = parse_overrides(args.set)
        if args.pretrained:
            overrides['net.pretrained'] = args.pretrained
        points = run_points(compose_config(args.method, args.net, args.profile, overrides), args.grid,
                            args.study == 'controls')
        specs = [RunSpec(method=args.method, target=args.target, net=args.net, profile=args.profile,
                         seed=seed, data_root=args.data_root, overrides={**overrides, **point},
                         tag='_'.join(t for t in (args.tag, name) if t), study=args.study,
                         results_dir=args.results_dir, work_dir=str(cpu_work_dir(args.work_dir)), device=args.device,
                         progress=not args.no_progress)
                 for seed in args.seed for name, point in points]
        for spec in specs:          # every point validated before any trains
            validate(spec)
    except (KeyError, ValueError, FileNotFoundError, OSError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    # A sweep runs every point: a failed one (diverged, locked, unreadable data or checkpoint) is
    # reported at the end and makes the exit status 1.
    failed = []
    for spec in specs:
        what = f'{spec.method} {spec.target} {spec.net} seed {spec.seed}' + (f' [{spec.tag}]' if spec.tag else '')
        try:
            path = run(spec, force=args.force)
        except Exception as err:   # noqa: BLE001 -- reported in the summary, the sweep goes on
            logging.getLogger('udabench').error('%s failed: %s: %s', what, type(err).__name__, err)
            failed.append(f'{what}: {type(err).__name__}: {err}')
            continue
        if run_status(path) == 'failed':
            failed.append(f'{what}: {json.loads(path.read_text())["failure"]["message"]} (failure record {path})')
        else:
            print(describe_result(path))   # the stored numbers, also for a run that existed
    if failed:
        print(f'\n{len(failed)} of {len(specs)} runs failed:', file=sys.stderr)
        for line in failed:
            print(f'  - {line}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
