#!/usr/bin/env python
"""Startup check: build every method with both nets on both targets at a profile's shapes (image
size, widths, batch sizes) and run each training stage for a few steps on a handful of synthetic
images, so that a long run at ``--profile paper`` does not fail hours in (MIC's "startup test").

    python tools/startup_check.py --profile paper                 # every method, net and target
    python tools/startup_check.py --profile paper --methods glss --nets unet --targets hand
    python tools/startup_check.py --profile paper --set profile.precision=bf16 --device cuda

Every iteration count of the composed config (``method.stop_iters``, ``translation.iterations``,
``latent_search.iterations``, ...) is set to ``--steps`` and every epoch count (the segmentation
network's, the VAE's) to the epochs that make ``--steps`` steps over ``--images`` images. Each run
goes through the public ``runner.run`` in a child process (a fresh interpreter: a forked child of a
process that already runs torch's thread pool can deadlock) into a temporary folder; the
cached Source Only network and VAE are shared between runs as in real use, so the first run of a
net also trains them. Printed per run: the wall time, the child's peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``: it includes the imported libraries, about the
parent's figure printed as the baseline) and on a GPU the peak allocated GPU memory, and the steps each stage ran.
"""
from __future__ import annotations

import argparse
import json
import dataclasses
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from udabench.runner import RunSpec, compose_config, config_names, parse_overrides, run
from udabench.sweep import cpu_work_dir
from udabench.tasks import TASKS

NETS = ('deeplabv3plus', 'unet')


def step_overrides(method: str, net: str, profile: str, steps: int, images: int) -> dict:
    """Overrides that make every stage of ``method`` run ``steps`` steps on ``images`` images per domain."""
    cfg = compose_config(method, net, profile)
    prof = cfg.profile
    out = {f'profile.counts.{domain}': images for domain in prof['counts']}
    out['profile.seg_epochs'] = steps / max(images // prof['seg_batch_size'], 1)

    def walk(node, prefix):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f'{prefix}{key}.')
            elif key in ('iterations', 'stop_iters'):
                out[prefix + key] = steps
            elif key == 'epochs':
                out[prefix + key] = steps / max(images // node.get('batch_size', 1), 1)
    walk(cfg.to_dict()['method'], 'method.')
    return out


RESULT_MARK = 'startup-check-result: '


def _child(spec: RunSpec) -> dict:
    """Run ``spec`` in this process; its wall time, peak memory, stage steps or error."""
    import torch
    started = time.time()
    try:
        path = run(spec, force=True)
        record = json.loads(Path(path).read_text())
        stages = {k: v.get('iterations') for k, v in record['training']['summary'].items()}
        error = None
    except Exception:   # noqa: BLE001  (reported, not raised: the check goes on with the next run)
        stages, error = {}, traceback.format_exc()
    gpu = torch.cuda.max_memory_allocated() / 2 ** 20 if torch.cuda.is_available() else None
    return dict(wall_s=time.time() - started, peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                peak_gpu_mib=gpu, stages=stages, error=error)


def check_one(method: str, net: str, target: str, profile: str, steps: int, images: int, root: Path,
              device: str = 'auto', overrides: dict | None = None) -> dict:
    """Run one (method, net, target) in a child interpreter (``overrides`` as ``--set``, applied
    after the step counts); its wall time, peak memory, stage steps or error."""
    spec = RunSpec(method=method, target=target, net=net, profile=profile, data_root=str(root / 'no-real-data'),
                   overrides={**step_overrides(method, net, profile, steps, images), **(overrides or {})},
                   results_dir=str(root / 'runs'),
                   work_dir=str(cpu_work_dir(root / 'work')), synthetic_cache=str(root / 'synth'), device=device, progress=False)
    done = subprocess.run([sys.executable, __file__, '--child', json.dumps(dataclasses.asdict(spec))],
                          capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if lines:
        result = json.loads(lines[-1][len(RESULT_MARK):])
    else:
        result = dict(wall_s=None, peak_rss_mib=None, peak_gpu_mib=None, stages={},
                      error=f'the child process died (exit code {done.returncode}; out of memory?)\n{done.stderr[-2000:]}')
    return dict(method=method, net=net, target=target, **result)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--profile', default='paper', help='smoke | cpu | paper (default: paper)')
    parser.add_argument('--methods', nargs='+', help='method configs (default: all; see --list)')
    parser.add_argument('--nets', nargs='+', default=list(NETS), help=f'default: {" ".join(NETS)}')
    skin = TASKS['skin']['targets']
    parser.add_argument('--targets', nargs='+', default=list(skin), help=f'default: {" ".join(skin)}')
    parser.add_argument('--steps', type=int, default=2, help='steps per stage (default: 2)')
    parser.add_argument('--images', type=int, default=16, help='synthetic images per domain (default: 16)')
    parser.add_argument('--device', default='auto', help='auto | cpu | cuda[:N]')
    parser.add_argument('--set', nargs='*', default=[], metavar='KEY=VALUE',
                        help='config overrides for every run, e.g. profile.precision=bf16')
    parser.add_argument('--work-dir', help='where runs, caches and data go (default: a temporary folder)')
    parser.add_argument('--json', metavar='PATH', help='also write the results here')
    parser.add_argument('--list', action='store_true', help='list the method configs and exit')
    parser.add_argument('--child', metavar='SPEC', help=argparse.SUPPRESS)   # one run, in the child interpreter
    args = parser.parse_args(argv)
    if args.child:
        print(RESULT_MARK + json.dumps(_child(RunSpec(**json.loads(args.child)))), flush=True)
        return 0
    methods = config_names('methods')
    if args.list:
        print('\n'.join(methods))
        return 0
    unknown = sorted(set(args.methods or []) - set(methods))
    if unknown:
        parser.error(f'unknown method config(s) {unknown}; known: {", ".join(methods)}')
    try:
        overrides = parse_overrides(args.set)
        for method in args.methods or methods:     # a bad --set fails here, naming the key, not in every run
            compose_config(method, args.nets[0], args.profile, overrides)
    except (KeyError, ValueError) as err:
        parser.error(str(err))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f'profile {args.profile}{"".join(f", {k}={v}" for k, v in overrides.items())}, {args.steps} steps per stage, {args.images} images per domain; '
          f'peak RSS of the parent after imports (included in every figure): {base:.0f} MiB', flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix='startup_check_') as tmp:
        root = Path(args.work_dir or tmp)
        for method in args.methods or methods:
            for net in args.nets:
                for target in args.targets:
                    r = check_one(method, net, target, args.profile, args.steps, args.images, root, args.device,
                                  overrides)
                    results.append(r)
                    status = 'ok' if r['error'] is None else 'FAILED'
                    gpu = f' gpu {r["peak_gpu_mib"]:.0f} MiB' if r['peak_gpu_mib'] is not None else ''
                    wall = f'{r["wall_s"]:.1f}s' if r['wall_s'] is not None else '-'
                    rss = f'{r["peak_rss_mib"]:.0f} MiB' if r['peak_rss_mib'] is not None else '-'
                    print(f'{status:6} {method:20} {net:14} {target:5} {wall:>8} peak RSS {rss}{gpu} '
                          f'steps {r["stages"]}', flush=True)
                    if r['error']:
                        print(r['error'], flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    failed = [r for r in results if r['error']]
    print(f'{len(results) - len(failed)} of {len(results)} runs passed')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
