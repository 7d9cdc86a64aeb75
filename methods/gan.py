"""A compact GAN for the GAN-vs-VAE study of GLSS (seed 000 §2.5, supplement Table 2).

The supplement trained BigGAN (Brock et al. 2019) on COMPAQ and ran the latent search through its
generator. BigGAN is far too large for a CPU, so this is DCGAN (Radford et al. 2016 §3-4): the
generator maps z (``latent`` dims, N(0, I), as the VAE's prior) through a 4x4 transposed conv and
stride-2 transposed convs (channels ``width`` * 2^k down to ``width``) with BatchNorm + ReLU to a
tanh image; the discriminator mirrors it with stride-2 convs, LeakyReLU(0.2), BatchNorm after all
but the first, and a 4x4 conv to one logit. Weights N(0, 0.02), BatchNorm scales N(1, 0.02); Adam
lr 2e-4, betas (0.5, 0.999); the non-saturating loss (Goodfellow et al. 2014 §3): D minimises
BCE(D(x), 1) + BCE(D(G(z)), 0), G minimises BCE(D(G(z)), 1). One D step then one G step per
iteration, each on a fresh z batch. After training, the generator's BatchNorm statistics are
re-estimated over prior samples (BigGAN's "standing statistics"), so that the frozen generator the
latent search uses is the one the training batches saw.

``decode(z, edges)`` ignores the edges (BigGAN has no edge skip): the latent search treats the
generator exactly as the VAE decoder. ``source_frechet_distance`` scores any such model's prior
samples against real source images (see its docstring for the feature extractor).
"""
from __future__ import annotations

import math
from contextlib import nullcontext

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from udabench.datasets.base import RowView
from udabench.engine import StageRunner, autocast, batch_indices, build_optimizer, iterations_for
from udabench.evaluation import frechet_distance

from .base import BatchReader
from .vae import sobel_edges


def _steps(image_size: int) -> int:
    steps = int(math.log2(max(image_size // 4, 1)))
    if image_size < 8 or 4 * 2 ** steps != image_size:
        raise ValueError(f'GAN image_size must be 4 * 2^k with k >= 1, got {image_size}')
    return steps


def _dcgan_init(module: nn.Module) -> None:
    """Radford et al. 2016 §4: conv weights N(0, 0.02); BatchNorm scale N(1, 0.02), shift 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class DCGANGenerator(nn.Module):
    """z (N, latent) -> image (N, channels, image_size, image_size) in [-1, 1]."""

    def __init__(self, image_size: int = 64, channels: int = 1, latent: int = 64, width: int = 64):
        super().__init__()
        steps = _steps(image_size)
        self.latent = latent
        chans = [width * 2 ** k for k in range(steps - 1, -1, -1)]          # e.g. 8w, 4w, 2w, w at 64 px
        layers = [nn.ConvTranspose2d(latent, chans[0], 4, 1, 0, bias=False), nn.BatchNorm2d(chans[0]), nn.ReLU(True)]
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
        self.body = nn.Sequential(*layers, nn.ConvTranspose2d(chans[-1], channels, 4, 2, 1), nn.Tanh())
        _dcgan_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z[:, :, None, None])

    def decode(self, z: torch.Tensor, edges: torch.Tensor | None = None) -> torch.Tensor:
        """The latent search's interface (``EdgeSkipVAE.decode``); ``edges`` are ignored."""
        return self(z)


class DCGANDiscriminator(nn.Module):
    """image (N, channels, image_size, image_size) -> real/fake logit (N,)."""

    def __init__(self, image_size: int = 64, channels: int = 1, width: int = 64):
        super().__init__()
        steps = _steps(image_size)
        chans = [width * 2 ** k for k in range(steps)]                      # e.g. w, 2w, 4w, 8w at 64 px
        layers = [nn.Conv2d(channels, chans[0], 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, True)]
        self.body = nn.Sequential(*layers, nn.Conv2d(chans[-1], 1, 4, 1, 0))
        _dcgan_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """BCE(D(x), 1) + BCE(D(G(z)), 0): D labels real images 1 and generated ones 0."""
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss BCE(D(G(z)), 1) = -log D(G(z))."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def gan_step(generator: nn.Module, discriminator: nn.Module, g_opt, d_opt, real: torch.Tensor,
             noise: torch.Generator, autocast=nullcontext) -> dict:
    """One D update on (real, detached G(z)), then one G update on a fresh z; the losses and D's mean
    probabilities (``d_real``: on the real batch, ``d_fake``: on the batch G was updated on), as
    0-dim tensors. ``autocast()`` is the forward passes' context. z is drawn on the CPU from ``noise``
    (reproducible on any device) and moved in one copy per batch."""
    n, latent = real.shape[0], generator.latent
    with autocast():
        fake = generator(torch.randn(n, latent, generator=noise).to(real.device))
        real_logits, fake_logits = discriminator(real).float(), discriminator(fake.detach()).float()
        d_loss = discriminator_loss(real_logits, fake_logits)
    d_opt.zero_grad(set_to_none=True)
    d_loss.backward()
    d_opt.step()
    with autocast():
        fake_logits = discriminator(generator(torch.randn(n, latent, generator=noise).to(real.device))).float()
        g_loss = generator_loss(fake_logits)
    g_opt.zero_grad(set_to_none=True)
    g_loss.backward()
    g_opt.step()
    return dict(d_loss=d_loss.detach(), g_loss=g_loss.detach(), d_real=torch.sigmoid(real_logits.detach()).mean(),
                d_fake=torch.sigmoid(fake_logits.detach()).mean())


@torch.no_grad()
def standing_statistics(generator: nn.Module, batches: int, batch_size: int, seed: int, device: str) -> None:
    """Re-estimate the generator's BatchNorm running statistics as the plain average over ``batches``
    prior batches (BigGAN's standing statistics); leaves the generator in eval mode."""
    norms = [m for m in generator.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    noise = torch.Generator().manual_seed(seed)
    for m in norms:
        m.reset_running_stats()
        m.momentum = None                       # cumulative moving average over the batches below
    generator.train()
    for _ in range(batches):
        generator(torch.randn(batch_size, generator.latent, generator=noise).to(device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    generator.eval()


def train_gan(images: RowView, gan_cfg: dict, train: dict, stages: StageRunner, seed: int,
              device: str, precision: str = 'float32') -> DCGANGenerator:
    """Build and train the DCGAN on ``images`` (N, C, H, W) in [-1, 1] as stage ``gan`` of ``stages``
    (checkpointed; a finished stage in a cache folder is loaded, not re-trained); the generator is
    returned in eval mode with standing statistics.

    ``gan_cfg``: ``latent``, ``width`` (generator), ``d_width`` (discriminator, default ``width``);
    ``train``: ``epochs``, ``batch_size``, ``optimizer`` (both nets), ``standing_batches``.
    """
    size, channels = images.shape[-1], images.shape[1]
    torch.manual_seed(seed)
    generator = DCGANGenerator(size, channels, gan_cfg['latent'], gan_cfg['width']).to(device)
    discriminator = DCGANDiscriminator(size, channels, gan_cfg.get('d_width', gan_cfg['width'])).to(device)
    g_opt = build_optimizer(generator.parameters(), train['optimizer'])
    d_opt = build_optimizer(discriminator.parameters(), train['optimizer'])
    batch = train['batch_size']

    data = BatchReader({'x': images}, device)

    def step(it):
        real = data.batch(batch_indices(len(images), batch, it, seed))['x']
        # z depends on (seed, iteration) only, so a resumed stage draws what the uninterrupted one would
        return gan_step(generator, discriminator, g_opt, d_opt, real, torch.Generator().manual_seed(seed * 1_000_003 + it),
                        lambda: autocast(device, precision))

    generator.train()
    discriminator.train()
    stages.run('gan', step, iterations_for(train['epochs'], len(images), batch),
               {'generator': generator, 'discriminator': discriminator, 'generator_opt': g_opt,
                'discriminator_opt': d_opt})
    standing_statistics(generator, train.get('standing_batches', 16), batch, seed, device)
    return generator


# ------------------------------------------------------------------------------ sample quality
def encoder_features(net: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """(N, C) the deepest feature map of ``net``'s backbone (ResNet: its last stage; mmseg's UNet: its
    bottleneck, the first of the maps it returns), global-average pooled."""
    feats = net.model.backbone(images)
    deepest = feats[0] if net.name == 'unet' else feats[-1]
    return deepest.mean((2, 3))


@torch.no_grad()
def source_frechet_distance(net: nn.Module, model: nn.Module, real: RowView, seed: int, device: str,
                            samples: int = 1000, batch_size: int = 100) -> dict:
    """Fréchet distance between ``model``'s prior samples and real source images on the features of
    the frozen Source Only network ``net`` (``encoder_features``; Inception weights cannot be
    downloaded here, so this is not an FID and is comparable only between models scored with the
    same network). ``samples`` real images (a seeded subset of ``real``, in [-1, 1]) against as many
    samples h(z), z ~ N(0, I); a model with an edge skip gets the Sobel edges of those real images.
    """
    n = min(samples, len(real))
    pick = np.random.default_rng(seed).permutation(len(real))[:n]
    noise = torch.Generator().manual_seed(seed)
    real_feats, fake_feats = [], []
    for start in range(0, n, batch_size):
        x = torch.as_tensor(real[pick[start:start + batch_size]], dtype=torch.float32, device=device)
        z = torch.randn(len(x), model.latent, generator=noise).to(device)
        real_feats.append(encoder_features(net, x).cpu().numpy())
        fake_feats.append(encoder_features(net, model.decode(z, sobel_edges(x))).cpu().numpy())
    real_feats, fake_feats = np.concatenate(real_feats), np.concatenate(fake_feats)
    edges = getattr(model, 'edge_skip', False)
    return dict(value=frechet_distance(fake_feats, real_feats), samples=n,
                features=f'Source Only {net.name} backbone, deepest map, global average pooled '
                         f'({real_feats.shape[1]} dims)',
                sampling='h(z), z ~ N(0, I)' + (', with the Sobel edges of the real images' if edges else ''))
