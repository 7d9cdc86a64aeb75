#!/usr/bin/env python
"""GLSS figures of the supplement, from the suite's cached models (trained by run_benchmark.py):

* Fig. 2-4: target images, their VAE reconstruction (encoder mean), the clones at the start (the
  prior draw) and after 30, 60 and 90 latent-search iterations, and the masks (ground truth,
  Source Only, GLSS after the default 100 iterations); the search's mean loss and clone change
  every 10 iterations over ``--trace-images`` target images, and the encoder mean's loss, are printed;
* Fig. 5-6: SSIM of a target image and of its nearest clone against every source image.

    python tools/glss_figures.py --target hand --net deeplabv3plus --profile cpu
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib
import numpy as np
import torch

from udabench.methods.latent_search import latent_search, per_image_loss, ssim
from udabench.methods.vae import sobel_edges
from udabench.runner import RunSpec, prepare
from udabench.sweep import cpu_work_dir

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--target', default='hand', choices=('snv', 'hand'))
    parser.add_argument('--net', default='deeplabv3plus')
    parser.add_argument('--profile', default='cpu')
    parser.add_argument('--images', type=int, default=4, help='target images shown')
    parser.add_argument('--trace-images', type=int, default=64, help='target images whose search trajectory is printed')
    parser.add_argument('--data-root', default='data/real')
    parser.add_argument('--work-dir', default='work_dirs', help="run_benchmark's --work-dir (a folder per kind of CPU in it)")
    parser.add_argument('--out', default='results/figures')
    args = parser.parse_args(argv)
    prepared = prepare(RunSpec(method='glss', target=args.target, net=args.net, profile=args.profile,
                               data_root=args.data_root, work_dir=str(cpu_work_dir(args.work_dir)), progress=False))
    glss, ctx = prepared.method, prepared.ctx
    glss.fit(ctx)   # loads the cached Source Only network and VAE (trains them if absent)
    target = prepared.target
    ls = glss.ls_cfg
    searched = torch.as_tensor(target.normalised_images()[:max(args.images, args.trace_images)], device=ctx.device)
    search = latent_search(glss.vae, searched, iterations=100, loss=ls['loss'], lr=ls['lr'], betas=tuple(ls['betas']),
                           record_every=10, generator=torch.Generator().manual_seed(0))
    print(f'latent search over the first {len(searched)} target images ({ls["loss"]}, Adam lr {ls["lr"]}):')
    for k, clone in sorted(search.snapshots.items()):
        print(f'  iteration {k:3d}: mean loss {per_image_loss(ls["loss"], searched, clone).mean().item():.4f}, '
              f'mean |clone - clone at 100| {(clone - search.snapshots[100]).abs().mean().item():.4f}')
    x = searched[:args.images]
    with torch.no_grad():
        mu = glss.vae.encode(searched)[0]
        recon = glss.vae.decode(mu, sobel_edges(searched))
    print(f'  encoder mean: loss {per_image_loss(ls["loss"], searched, recon).mean().item():.4f} of its '
          f'reconstruction, |mu| {mu.norm(dim=1).mean().item():.2f} (searched |z| {search.z.norm(dim=1).mean().item():.2f})')
    recon = recon[:args.images]
    search.snapshots = {k: v[:args.images] for k, v in search.snapshots.items()}
    search.clones = search.clones[:args.images]
    columns = [('target', x), ('VAE reconstruction', recon)] + [(f'clone, {k} it.', search.snapshots[k]) for k in (0, 30, 60, 90)]
    masks = [('ground truth', torch.as_tensor(target.masks[:args.images]).float()),
             ('Source Only', glss._mask(x)), ('GLSS (100 it.)', glss._mask(search.snapshots[100]))]
    folder = Path(args.out) / f'{args.profile}_{prepared.data_source.split(" ")[0]}'
    folder.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(args.images, len(columns) + len(masks), figsize=(2 * (len(columns) + len(masks)), 2 * args.images),
                             squeeze=False)
    for col, (title, batch) in enumerate(columns + masks):
        for row in range(args.images):
            img = batch[row, 0] if batch.dim() == 4 else batch[row]
            axes[row, col].imshow(img.cpu().numpy(), cmap='gray', vmin=-1 if col < len(columns) else 0, vmax=1)
            axes[row, col].axis('off')
        axes[0, col].set_title(title, fontsize=8)
    fig.suptitle(f'GLSS latent search, {args.target}, {args.net}, profile {args.profile}, data: {prepared.data_source}', fontsize=9)
    fig.tight_layout()
    clones_path = folder / f'glss_clones_{args.target}_{args.net}.png'
    fig.savefig(clones_path, dpi=110)
    plt.close(fig)

    source = torch.as_tensor(np.asarray(ctx.source.normalised_images()), device=ctx.device)
    fig, axes = plt.subplots(1, args.images, figsize=(3.2 * args.images, 2.8), squeeze=False)
    for i in range(args.images):
        with torch.no_grad():
            to_target = ssim(x[i:i + 1].expand_as(source), source)
            to_clone = ssim(search.clones[i:i + 1].expand_as(source), source)
        ax = axes[0, i]
        ax.hist(to_target.cpu().numpy(), bins=40, alpha=0.6, color='tab:blue', label='target vs source')
        ax.hist(to_clone.cpu().numpy(), bins=40, alpha=0.6, color='tab:red', label='clone vs source')
        ax.set_xlabel('SSIM')
        ax.set_title(f'image {i}', fontsize=8)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f'SSIM against all {len(source)} source images ({args.target}, {args.net}, data: {prepared.data_source})',
                 fontsize=9)
    fig.tight_layout()
    ssim_path = folder / f'glss_ssim_{args.target}_{args.net}.png'
    fig.savefig(ssim_path, dpi=110)
    plt.close(fig)
    print(clones_path)
    print(ssim_path)
    return 0


if __name__ == '__main__':
    sys.exit(main())
