#!/usr/bin/env python
"""Latent-search cost per image: batched vs one image at a time, fixed K vs convergence stopping.

    OMP_NUM_THREADS=1 python tools/bench_latent_search.py [--size 128] [--width 128] [--hidden 1024]

Times the suite's own ``latent_search`` (the decoder is the paper-size ``EdgeSkipVAE`` by default,
untrained: its weights do not change the cost of an iteration) and counts the FLOPs of one Adam
iteration per image (``torch.utils.flop_counter``: forward and backward of the convolutions and
matmuls). Fixed-K rows time ``--timed-iterations`` iterations and scale to K = ``--iterations``
(an iteration costs the same throughout); the convergence-stopping rows run to convergence
(``--patience``, ``--tolerance``, cap K) and report the iterations the images used, which on an
untrained decoder and random images says little about a trained one: read the cost per iteration.
Times are CPU seconds of this process on CPU (a shared machine's other load does not count),
wall seconds with CUDA synchronisation on a GPU. The paper reports 450 ms (SNV) and 120 ms (Hand
Gesture) per image on a Tesla K40 (seed 002 §5.4).
"""
from __future__ import annotations

import argparse
import json
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from udabench.engine import keep_freed_memory
from udabench.methods.latent_search import latent_search
from udabench.methods.vae import EdgeSkipVAE
from udabench.tables import markdown_rows


def _seconds(fn, device) -> float:
    """CPU seconds of this process (all threads) on CPU; synchronised wall seconds on CUDA."""
    if device.startswith('cuda'):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        return time.perf_counter() - start
    start = time.process_time()
    fn()
    return time.process_time() - start


def flops_per_image_iteration(vae, size: int, device: str) -> float:
    images = torch.rand(2, 1, size, size, device=device) * 2 - 1
    counts = []
    for iterations in (1, 2):
        with FlopCounterMode(display=False) as counter:
            latent_search(vae, images, iterations=iterations)
        counts.append(counter.get_total_flops())
    return (counts[1] - counts[0]) / len(images)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--width', type=int, default=128)
    parser.add_argument('--stem', type=int, default=64)
    parser.add_argument('--hidden', type=int, default=1024)
    parser.add_argument('--iterations', type=int, default=100, help='K, the fixed iteration count (and the cap)')
    parser.add_argument('--timed-iterations', type=int, default=5, help='iterations timed per fixed-K row')
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[1, 4, 16])
    parser.add_argument('--loop-images', type=int, default=2, help='images searched one at a time')
    parser.add_argument('--patience', type=int, default=10, help='convergence stopping: 0 leaves those rows out')
    parser.add_argument('--tolerance', type=float, default=1e-3)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--json', help='also write the figures to this file')
    args = parser.parse_args(argv)
    keep_freed_memory()
    torch.manual_seed(0)
    vae = EdgeSkipVAE(image_size=args.size, width=args.width, stem=args.stem, hidden=args.hidden).to(args.device).eval()
    latent_search(vae, torch.rand(2, 1, args.size, args.size, device=args.device) * 2 - 1, iterations=2)   # warm-up
    flops = flops_per_image_iteration(vae, args.size, args.device)
    k, t = args.iterations, args.timed_iterations
    rows = []

    def images(n):
        return torch.rand(n, 1, args.size, args.size, device=args.device) * 2 - 1

    def add(mode, batch, seconds_per_image_iteration, iterations_used, seconds_per_image):
        rows.append(dict(mode=mode, batch=batch, ms_per_image_iteration=1000 * seconds_per_image_iteration,
                         iterations_used=iterations_used, ms_per_image=1000 * seconds_per_image,
                         gflops=flops / seconds_per_image_iteration / 1e9))

    loop = images(args.loop_images)
    per = _seconds(lambda: [latent_search(vae, loop[i:i + 1], iterations=t) for i in range(len(loop))],
                   args.device) / len(loop) / t
    add(f'fixed K={k}, one at a time', 1, per, k, per * k)
    for batch in args.batch_sizes:
        per = _seconds(lambda: latent_search(vae, images(batch), iterations=t), args.device) / batch / t
        add(f'fixed K={k}, batched', batch, per, k, per * k)
    if args.patience:
        stop = dict(iterations=k, patience=args.patience, tolerance=args.tolerance)
        used, seconds = [], 0.0
        for i in range(len(loop)):
            result = {}
            seconds += _seconds(lambda: result.update(r=latent_search(vae, loop[i:i + 1], **stop)), args.device)
            used.append(int(result['r'].iterations.max()))
        mean_used = sum(used) / len(used)
        add(f'convergence (patience {args.patience}), one at a time', 1, seconds / sum(used), mean_used,
            seconds / len(loop))
    device = torch.cuda.get_device_name() if args.device.startswith('cuda') else f'CPU, {torch.get_num_threads()} thread(s)'
    print(f'latent search at {args.size}x{args.size}, VAE width {args.width}, dense {args.hidden}; {device}; '
          f'{flops / 1e9:.2f} GFLOP per image and Adam iteration (forward + backward)\n')
    print(markdown_rows(rows, [('mode', 'mode', ''), ('batch', 'batch', 'd'),
                               ('ms per image-iteration', 'ms_per_image_iteration', '.1f'),
                               ('iterations', 'iterations_used', 'g'), ('ms per image', 'ms_per_image', '.0f'),
                               ('GFLOP/s', 'gflops', '.1f')]))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(device=device, size=args.size, width=args.width, hidden=args.hidden,
                           gflop_per_image_iteration=flops / 1e9, rows=rows), f, indent=2)


if __name__ == '__main__':
    main()
