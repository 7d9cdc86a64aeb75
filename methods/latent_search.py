"""Batched Latent Search (seed 002 §3.3 Eq. 9, §4.2; seed 000 Algorithm 1 lines 13-19).

For each target image x_T, z ~ N(0, I) is optimised with Adam (lr 0.1, betas 0.9/0.99) to
minimise 1 - SSIM(x_T, h_theta(z)) with an 11x11 Gaussian window, the decoder frozen and fed the
target's own Sobel edges. Many images are searched at once, each with its own z: the objective is
the *sum* of per-image losses, and Adam's state is element-wise, so one image's loss never changes
another's update. ``restarts`` > 1 searches several z per image and keeps the one of lowest loss.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from pytorch_msssim import ssim
from tqdm import tqdm

from .vae import EdgeSkipVAE, sobel_edges


def per_image_loss(name: str, target: torch.Tensor, clone: torch.Tensor) -> torch.Tensor:
    """(N,) loss between images in [-1, 1]: ``ssim`` (1 - SSIM, 11x11 window, sigma 1.5), ``mse``, ``mae``."""
    if name == 'ssim':
        return 1.0 - ssim(target, clone, data_range=2.0, size_average=False, win_size=11, win_sigma=1.5)
    if name == 'mse':
        return (target - clone).pow(2).flatten(1).mean(1)
    if name == 'mae':
        return (target - clone).abs().flatten(1).mean(1)
    raise KeyError(f'unknown latent-search loss {name!r}; expected ssim, mse or mae')


@dataclass
class SearchResult:
    z: torch.Tensor            # (N, latent) the best latent code per image
    clones: torch.Tensor       # (N, C, H, W) nearest clones h_theta(z)
    loss: torch.Tensor         # (N,) final loss per image
    snapshots: dict            # iteration -> clones at that iteration (when record_every is set)


def latent_search(vae: EdgeSkipVAE, targets: torch.Tensor, iterations: int = 100, loss: str = 'ssim',
                  lr: float = 0.1, betas=(0.9, 0.99), eps: float = 1e-8, init: str = 'prior',
                  restarts: int = 1, record_every: int | None = None,
                  generator: torch.Generator | None = None, progress: bool = False) -> SearchResult:
    """Search the nearest clone of every image in ``targets`` (N, C, H, W) in [-1, 1]."""
    if init not in ('prior', 'encoder'):
        raise KeyError(f'unknown latent-search init {init!r}; expected prior or encoder')
    n = targets.shape[0]
    for p in vae.parameters():
        p.requires_grad_(False)
    reps = targets.repeat(restarts, 1, 1, 1)
    edges = sobel_edges(reps)
    if init == 'prior':
        z0 = torch.randn(n * restarts, vae.latent, generator=generator, device='cpu').to(targets.device)
    else:
        with torch.no_grad():
            z0 = vae.encode(reps)[0]
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr, betas=betas, eps=eps)
    snapshots = {}
    for it in tqdm(range(iterations), desc=f'latent search ({n} images)', disable=not progress, leave=False):
        if record_every and it % record_every == 0:
            snapshots[it] = _best(vae, z, reps, edges, loss, n, restarts).clones
        losses = per_image_loss(loss, reps, vae.decode(z, edges))
        opt.zero_grad(set_to_none=True)
        losses.sum().backward()
        opt.step()
    result = _best(vae, z, reps, edges, loss, n, restarts)
    if record_every:
        snapshots[iterations] = result.clones
    result.snapshots = snapshots
    return result


@torch.no_grad()
def _best(vae, z, reps, edges, loss, n, restarts) -> SearchResult:
    clones = vae.decode(z, edges)
    losses = per_image_loss(loss, reps, clones).view(restarts, n)
    pick = losses.argmin(0)
    rows = pick * n + torch.arange(n, device=pick.device)
    return SearchResult(z=z[rows].detach(), clones=clones[rows], loss=losses.min(0).values, snapshots={})
