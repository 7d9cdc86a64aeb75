#!/usr/bin/env python
"""Train, evaluate and write one result file per run (or per grid point with --grid).

    python tools/run_benchmark.py --method source_only --target hand --net unet --profile cpu

``--study controls`` runs the method's declared ``controls`` (its config file: name -> overrides,
e.g. every target weight 0 and the target weights x 100), one result file tagged with each name.
"""
from __future__ import annotations

import argparse
import logging
import sys

from udabench.runner import (TARGETS, RunSpec, compose_config, describe_registries, grid_points,
                             parse_overrides, point_tag, run)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--method', help='registered method name (see --list)')
    parser.add_argument('--target', choices=TARGETS + tuple(f'synth_{t}' for t in TARGETS),
                        help='target domain; the real set is used when <data-root>/<target> exists')
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
    parser.add_argument('--work-dir', default='work_dirs', help='checkpoints and caches')
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
        points = [('', {})]
        if args.grid and args.study == 'controls':
            parser.error('--grid and --study controls exclude each other')
        if args.grid:
            points = [(point_tag(p), p) for p in grid_points(compose_config(args.method, args.net, args.profile, overrides))]
            if not points:
                parser.error(f'method {args.method!r} declares no grid')
        if args.study == 'controls':
            controls = compose_config(args.method, args.net, args.profile, overrides).get('controls')
            if not controls:
                parser.error(f'method {args.method!r} declares no controls (a `controls` dict in its config file)')
            points = [(name, dict(point)) for name, point in controls.items()]
        for seed in args.seed:
            for name, point in points:
                tag = '_'.join(t for t in (args.tag, name) if t)
                spec = RunSpec(method=args.method, target=args.target, net=args.net, profile=args.profile,
                               seed=seed, data_root=args.data_root, overrides={**overrides, **point}, tag=tag, study=args.study,
                               results_dir=args.results_dir, work_dir=args.work_dir, device=args.device,
                               progress=not args.no_progress)
                print(run(spec, force=args.force))
    except (KeyError, ValueError, FileNotFoundError, OSError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
