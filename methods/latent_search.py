"""Batched Latent Search (seed 002 §3.3 Eq. 9, §4.2; seed 000 Algorithm 1 lines 13-19).

For each target image x_T, z ~ N(0, I) is optimised with Adam (lr 0.1, betas 0.9/0.99) to
minimise 1 - SSIM(x_T, h_theta(z)) (``ssim``: the standard SSIM on images mapped to [0, 1]), the
decoder frozen and fed the target's own Sobel edges. Many images are searched at once, each with
its own z: the objective is the *sum* of per-image losses, and Adam's state is element-wise, so one
image's loss never changes another's update. ``restarts`` > 1 searches several z per image and keeps the one of lowest loss.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import pytorch_msssim
import torch
from tqdm import tqdm

from .vae import sobel_edges


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N,) standard SSIM (Wang et al. 2004) of (N, C, H, W) images in [-1, 1], differentiable.

    The images are mapped to [0, 1] first ((x + 1) / 2, as the official code), then SSIM with an
    11x11 Gaussian window (sigma 1.5), K1 0.01, K2 0.03 and data range 1 (seed 000 §2.3), averaged
    over the valid window positions. On [-1, 1] images directly the luminance term, which is not
    shift-invariant, would be meaningless near 0. Used by the search and by every SSIM figure.
    """
    return pytorch_msssim.ssim((x + 1) / 2, (y + 1) / 2, data_range=1.0, size_average=False, win_size=11,
                               win_sigma=1.5, K=(0.01, 0.03))


def per_image_loss(name: str, target: torch.Tensor, clone: torch.Tensor) -> torch.Tensor:
    """(N,) loss between images in [-1, 1]: ``ssim`` (1 - ``ssim``), ``mse``, ``mae``."""
    if name == 'ssim':
        return 1.0 - ssim(target, clone)
    if name == 'mse':
        return (target - clone).pow(2).flatten(1).mean(1)
    if name == 'mae':
        return (target - clone).abs().flatten(1).mean(1)
    raise KeyError(f'unknown latent-search loss {name!r}; expected ssim, mse or mae')


def prior_draws(indices, restarts: int, latent: int, seed: int) -> torch.Tensor:
    """(restarts * N, latent) starting codes z ~ N(0, I) for the images ``indices`` (rows ordered as
    ``latent_search`` repeats the images): image i's codes depend on (seed, i) only, so that a
    search does not depend on how the images are batched."""
    indices = list(indices)
    draws = [torch.randn(restarts, latent, generator=torch.Generator().manual_seed(
        int(np.random.SeedSequence([seed, i]).generate_state(1)[0]))) for i in indices]
    return torch.stack(draws, 1).reshape(restarts * len(indices), latent) if draws else torch.zeros(0, latent)


@dataclass
class SearchResult:
    z: torch.Tensor            # (N, latent) the best latent code per image
    clones: torch.Tensor       # (N, C, H, W) nearest clones h_theta(z)
    loss: torch.Tensor         # (N,) final loss per image
    snapshots: dict            # iteration -> clones at that iteration (when record_every is set)
    iterations: torch.Tensor | None = None   # (N,) Adam steps taken by each image's chosen search


def latent_search(model, targets: torch.Tensor, iterations: int = 100, loss: str = 'ssim',
                  lr: float = 0.1, betas=(0.9, 0.99), eps: float = 1e-8, init: str = 'prior',
                  restarts: int = 1, record_every: int | None = None,
                  generator: torch.Generator | None = None, z0: torch.Tensor | None = None,
                  patience: int | None = None, tolerance: float = 1e-3, progress: bool = False,
                  autocast=nullcontext) -> SearchResult:
    """Search the nearest clone of every image in ``targets`` (N, C, H, W) in [-1, 1].

    ``model`` is any generative model with ``latent`` (its latent size) and ``decode(z, edges)``
    (the VAE; a model without an edge skip ignores the edges). With ``init='prior'`` the start is
    ``z0`` if given, else drawn from ``generator``. ``patience`` None runs ``iterations`` steps
    (fixed K, seed 002 §4.2); an integer searches "until convergence of L_ssim" (seed 000 Algorithm 1
    line 17): an image stops once its loss has not fallen below (1 - ``tolerance``) x its best for
    ``patience`` iterations, with ``iterations`` as the cap (one device sync per iteration, for the
    stopping test). ``autocast()`` is the decoder's context (bf16 under ``profile.precision='bf16'``);
    the loss is always computed in float32 (SSIM's variance terms cancel badly in bf16).
    """
    if init not in ('prior', 'encoder'):
        raise KeyError(f'unknown latent-search init {init!r}; expected prior or encoder')
    if patience is not None and patience < 1:
        raise ValueError(f'latent_search.patience must be a positive integer or None, got {patience!r}')
    n = targets.shape[0]
    for p in model.parameters():
        p.requires_grad_(False)
    reps = targets.repeat(restarts, 1, 1, 1)
    edges = sobel_edges(reps)
    if init == 'encoder':
        with torch.no_grad():
            z0 = model.encode(reps)[0]
    elif z0 is None:
        z0 = torch.randn(n * restarts, model.latent, generator=generator, device='cpu').to(targets.device)
    elif z0.shape != (n * restarts, model.latent):
        raise ValueError(f'z0 must have shape {(n * restarts, model.latent)}, got {tuple(z0.shape)}')
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr, betas=betas, eps=eps)
    rows = n * restarts
    active = torch.ones(rows, dtype=torch.bool, device=z.device)
    used = torch.zeros(rows, dtype=torch.long, device=z.device)
    best = torch.full((rows,), float('inf'), device=z.device)
    since = torch.zeros(rows, dtype=torch.long, device=z.device)
    snapshots = {}
    for it in tqdm(range(iterations), desc=f'latent search ({n} images)', disable=not progress, leave=False):
        if record_every and it % record_every == 0:
            snapshots[it] = _best(model, z, reps, edges, loss, n, restarts, used, autocast).clones
        with autocast():
            clones = model.decode(z, edges)
        losses = per_image_loss(loss, reps, clones.float())
        if patience is not None:
            with torch.no_grad():
                improved = losses < best * (1 - tolerance)
                best = torch.where(improved, losses, best)
                since = torch.where(improved, torch.zeros_like(since), since + 1)
                active &= since < patience
            if not active.any():
                break
        opt.zero_grad(set_to_none=True)
        losses.sum().backward()
        before = z.detach().clone() if patience is not None else None
        opt.step()
        if before is not None:
            with torch.no_grad():   # a converged image keeps its z
                z[~active] = before[~active]
        used += active
    result = _best(model, z, reps, edges, loss, n, restarts, used, autocast)
    if record_every:   # an early stop leaves the later snapshots at the final clones
        for it in range(0, iterations + 1, record_every):
            snapshots.setdefault(it, result.clones)
        snapshots[iterations] = result.clones
    result.snapshots = snapshots
    return result


@torch.no_grad()
def _best(model, z, reps, edges, loss, n, restarts, used, autocast=nullcontext) -> SearchResult:
    with autocast():
        clones = model.decode(z, edges).float()
    losses = per_image_loss(loss, reps, clones).view(restarts, n)
    pick = losses.argmin(0)
    rows = pick * n + torch.arange(n, device=pick.device)
    return SearchResult(z=z[rows].detach(), clones=clones[rows], loss=losses.min(0).values, snapshots={},
                        iterations=used[rows].clone())
