#!/usr/bin/env python
"""Speed of every hot loop at a profile's shapes: time per step and achieved GFLOP/s as a fraction
of the matmul peak measured in the same run (a benchmark, not a test).

    OMP_NUM_THREADS=1 python tools/bench_speed.py [--profile cpu] [--steps 5] [--json out.json]

Each method's own ``fit`` runs with its real configuration, data and code, but every training stage
(``StageRunner.run``) is replaced by a few warm-up steps, a timed run of ``--steps`` steps and one
more step under ``torch.utils.flop_counter.FlopCounterMode`` (forward and backward FLOPs of matmuls
and convolutions); nothing is checkpointed or cached. The latent search is timed the same way, per
Adam iteration over a ``predict_batch_size`` batch. The peak is the best of a few single-precision
``torch.mm`` calls of ``--matmul`` x ``--matmul`` matrices on the same threads. Times are CPU seconds of this process (``time.process_time``), so that other
processes on a shared machine do not inflate them; the wall time per step is printed beside.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from udabench import engine
from udabench.runner import RunSpec, prepare
from udabench.tables import markdown_rows

#: (label, method, net, the stages it times); the source network's 'segmentation' stage is timed
#: for each net by the first entry that trains it.
HOT_LOOPS = [(f'segmentation step, {net}', 'source_only', net, ['segmentation'])
             for net in ('unet', 'deeplabv3plus', 'fpn', 'linknet', 'pspnet')] + [
    ('GLSS VAE step (with L_p)', 'glss', 'deeplabv3plus', ['vae']),
    ('adaptation step, AdaptSegNet', 'adaptsegnet', 'deeplabv3plus', ['adaptation']),
    ('adaptation step, AdvEnt', 'advent', 'deeplabv3plus', ['adaptation']),
    ('BDL translation step (CycleGAN)', 'bdl', 'deeplabv3plus', ['translation_0']),
    ('DISE step (translation + segmentation)', 'dise', 'deeplabv3plus', ['adaptation']),
]


class _Measured(Exception):
    """Raised once a method's stages of interest are timed: the rest of its fit is not needed."""


def matmul_peak(size: int, repeats: int = 5) -> float:
    """GFLOP/s of the best of ``repeats`` float32 ``size x size`` matrix products."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b))[0] for _ in range(repeats))
    return 2 * size ** 3 / best / 1e9


def _timed(fn) -> tuple[float, float]:
    """(CPU seconds of this process, all its threads; wall seconds) spent in ``fn``: on a shared
    machine the wall time measures the other processes too."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def time_steps(step, first: int, warmup: int, steps: int) -> dict:
    """Warm up, time ``steps`` calls of ``step(it)`` and count one more call's FLOPs."""
    for it in range(first, first + warmup):
        step(it)
    seconds, wall = (t / steps for t in _timed(lambda: [step(it) for it in range(first + warmup, first + warmup + steps)]))
    with FlopCounterMode(display=False) as counter:
        step(first + warmup + steps)
    return dict(seconds=seconds, wall=wall, flops=counter.get_total_flops())


def bench_method(method: str, net: str, stages: list[str], args, done: dict) -> dict:
    """Time the named stages of ``method``'s fit (and 'segmentation' once per net)."""
    wanted = set(stages) | {'segmentation'}
    out = {}

    def key(stage):          # the source network's step is the same whichever method trains it
        return ('segmentation', net) if stage == 'segmentation' else (method, stage)

    def run(self, stage, step, num_iters, state):
        if stage in wanted and key(stage) not in done:
            done[key(stage)] = out[stage] = time_steps(step, 0, args.warmup, args.steps)
        if all(key(s) in done for s in stages):
            raise _Measured
        return [step(it) for it in range(min(num_iters, 1))]   # untimed stages: one step, to move on

    with tempfile.TemporaryDirectory() as tmp:
        spec = RunSpec(method=method, target=args.target, net=net, profile=args.profile, data_root=args.data_root,
                       results_dir=f'{tmp}/runs', work_dir=f'{tmp}/work', synthetic_cache=args.synthetic_cache,
                       progress=False)
        p = prepare(spec)
        original = engine.StageRunner.run
        engine.StageRunner.run = run
        try:
            torch.manual_seed(0)
            p.method.to(p.device)
            p.method.fit(p.ctx)
        except _Measured:
            pass
        finally:
            engine.StageRunner.run = original
        if method == 'glss':
            out['latent search'] = bench_latent_search(p, args)
    return out


def bench_latent_search(p, args) -> dict:
    """One Adam iteration of the latent search over a prediction batch of target images, through a
    VAE of the method's configuration (its training was skipped: the weights do not change the cost)."""
    from udabench.methods.latent_search import latent_search
    from udabench.methods.vae import EdgeSkipVAE
    method = p.method
    batch = torch.as_tensor(p.target.normalised_images()[:method.predict_batch_size])
    cfg = method.ls_cfg
    vae = EdgeSkipVAE(image_size=batch.shape[-1], **method.vae_cfg).eval()

    def search(iterations):
        with torch.enable_grad():
            latent_search(vae, batch, iterations=iterations, loss=cfg['loss'], lr=cfg['lr'])

    search(1)
    k = args.steps
    long, short = _timed(lambda: search(2 * k)), _timed(lambda: search(k))
    seconds, wall = ((a - b) / k for a, b in zip(long, short))    # per iteration, without the set-up
    with FlopCounterMode(display=False) as counter:
        search(1)
    with FlopCounterMode(display=False) as counter0:
        search(0)
    return dict(seconds=seconds, wall=wall, flops=counter.get_total_flops() - counter0.get_total_flops(),
                batch=len(batch))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--profile', default='cpu')
    parser.add_argument('--target', default='hand')
    parser.add_argument('--steps', type=int, default=5, help='timed steps per loop')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--matmul', type=int, default=2048, help='matrix size of the peak measurement')
    parser.add_argument('--only', nargs='*', help='labels (substrings) of the loops to time')
    parser.add_argument('--data-root', default='data/real')
    parser.add_argument('--synthetic-cache', default='data/synthetic')
    parser.add_argument('--json', help='also write the figures to this file')
    parser.add_argument('--system-malloc', action='store_true',
                        help="keep glibc's default malloc thresholds (runs call engine.keep_freed_memory)")
    args = parser.parse_args(argv)
    if not args.system_malloc:
        engine.keep_freed_memory()
    peak = matmul_peak(args.matmul)
    rows, done = [], {}
    for label, method, net, stages in HOT_LOOPS:
        if args.only and not any(o in label for o in args.only):
            continue
        for stage, m in bench_method(method, net, stages, args, done).items():
            name = label if stage in stages else (f'segmentation step, {net}' if stage == 'segmentation' else stage)
            if stage == 'latent search':
                name = f'latent-search iteration (batch {m["batch"]})'
            if any(r['loop'] == name for r in rows):
                continue
            gflops = m['flops'] / m['seconds'] / 1e9
            rows.append(dict(loop=name, ms_per_step=1000 * m['seconds'], wall_ms_per_step=1000 * m['wall'],
                             gflop_per_step=m['flops'] / 1e9, gflops=gflops, fraction_of_peak=gflops / peak))
        print(f'  done: {label}', flush=True)
    print(f'\nprofile {args.profile}, {torch.get_num_threads()} thread(s), torch {torch.__version__}; '
          f'matmul peak {peak:.1f} GFLOP/s per CPU-second (float32 {args.matmul}x{args.matmul} torch.mm); '
          'GFLOP/s per CPU-second of this process\n')
    print(markdown_rows(rows, [('hot loop', 'loop', ''), ('CPU ms/step', 'ms_per_step', '.1f'),
                               ('wall ms/step', 'wall_ms_per_step', '.1f'), ('GFLOP/step', 'gflop_per_step', '.2f'),
                               ('GFLOP/s', 'gflops', '.1f'), ('of matmul peak', 'fraction_of_peak', '.0%')]))
    if args.json:
        with open(args.json, 'w') as fh:
            json.dump(dict(profile=args.profile, threads=torch.get_num_threads(), peak_gflops=peak, rows=rows), fh,
                      indent=2)
    return 0


if __name__ == '__main__':
    np.seterr(all='ignore')
    raise SystemExit(main())
