#!/usr/bin/env python
"""Latent-search speed: milliseconds per image at K iterations, batched vs one image at a time.

    python tools/bench_latent_search.py [--size 128] [--iterations 100] [--batch-sizes 1 8 32 128]

Times the suite's own ``latent_search`` on the paper-size VAE (its weights do not change the
cost) on whatever device is available; the one-at-a-time loop searches the same images with the
same code. The paper reports 450 ms (SNV) and 120 ms (Hand Gesture) per image on a Tesla K40.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from udabench.methods.latent_search import latent_search
from udabench.methods.vae import EdgeSkipVAE


def _time(fn, device) -> float:
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--iterations', type=int, default=100)
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[1, 8, 32, 128])
    parser.add_argument('--loop-images', type=int, default=4, help='images searched one at a time')
    parser.add_argument('--width', type=int, default=128)
    parser.add_argument('--hidden', type=int, default=1024)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--json', help='also write the figures to this file')
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    vae = EdgeSkipVAE(image_size=args.size, width=args.width, hidden=args.hidden).to(args.device).eval()
    rows = []
    warm = torch.rand(2, 1, args.size, args.size, device=args.device) * 2 - 1
    latent_search(vae, warm, iterations=3)
    images = torch.rand(args.loop_images, 1, args.size, args.size, device=args.device) * 2 - 1
    seconds = _time(lambda: [latent_search(vae, images[i:i + 1], iterations=args.iterations)
                             for i in range(args.loop_images)], args.device)
    rows.append(dict(mode='one at a time', batch=1, images=args.loop_images, ms_per_image=1000 * seconds / args.loop_images))
    for batch in args.batch_sizes:
        images = torch.rand(batch, 1, args.size, args.size, device=args.device) * 2 - 1
        seconds = _time(lambda: latent_search(vae, images, iterations=args.iterations), args.device)
        rows.append(dict(mode='batched', batch=batch, images=batch, ms_per_image=1000 * seconds / batch))
    device_name = torch.cuda.get_device_name() if args.device.startswith('cuda') else f'CPU, {torch.get_num_threads()} threads'
    print(f'latent search, K={args.iterations}, {args.size}x{args.size}, VAE width {args.width}, device: {device_name}')
    print(f'{"mode":<14}{"batch":>7}{"ms/image":>12}')
    for r in rows:
        print(f'{r["mode"]:<14}{r["batch"]:>7}{r["ms_per_image"]:>12.1f}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(device=device_name, iterations=args.iterations, size=args.size, rows=rows), f, indent=2)


if __name__ == '__main__':
    main()
