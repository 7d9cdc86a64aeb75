"""Image-translation parts shared by BDL and DISE: a ResNet generator, a PatchGAN discriminator
with instance norm, and the least-squares GAN loss (CycleGAN, Zhu et al. 2017, as both use); and
``translate``, which writes a generator's translations of a whole set to disk."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from udabench.datasets.base import RowView

from .base import to_tensor


def conv_in_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, padding_mode='reflect'),
                         nn.InstanceNorm2d(cout, affine=True), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv_in_relu(channels, channels),
                                  nn.Conv2d(channels, channels, 3, padding=1, padding_mode='reflect'),
                                  nn.InstanceNorm2d(channels, affine=True))

    def forward(self, x):
        return x + self.body(x)


def upsample_in_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1),
                         nn.InstanceNorm2d(cout, affine=True), nn.ReLU(inplace=True))


class ResnetGenerator(nn.Module):
    """CycleGAN's generator: 7x7 stem, ``downs`` stride-2 convs, residual blocks, as many
    up-convolutions, 7x7 output conv and tanh (images in [-1, 1])."""

    def __init__(self, channels: int = 1, width: int = 64, downs: int = 2, blocks: int = 9):
        super().__init__()
        layers = [conv_in_relu(channels, width, 7)]
        for i in range(downs):
            layers.append(conv_in_relu(width * 2 ** i, width * 2 ** (i + 1), 3, 2))
        layers += [ResidualBlock(width * 2 ** downs) for _ in range(blocks)]
        for i in reversed(range(downs)):
            layers.append(upsample_in_relu(width * 2 ** (i + 1), width * 2 ** i))
        layers += [nn.Conv2d(width, channels, 7, padding=3, padding_mode='reflect'), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x)


class PatchDiscriminator(nn.Module):
    """70x70-style PatchGAN: 4x4 convs, stride 2 then 1, instance norm, LeakyReLU 0.2."""

    def __init__(self, channels: int = 1, width: int = 64, layers: int = 3):
        super().__init__()
        mods = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        c = width
        for i in range(1, layers + 1):
            nxt = width * min(2 ** i, 8)
            mods += [nn.Conv2d(c, nxt, 4, 2 if i < layers else 1, 1), nn.InstanceNorm2d(nxt, affine=True),
                     nn.LeakyReLU(0.2, inplace=True)]
            c = nxt
        mods.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.body = nn.Sequential(*mods)

    def forward(self, x):
        return self.body(x)


def lsgan_loss(pred: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss: (D(x) - 1)^2 for real, D(x)^2 for fake."""
    return (pred - (1.0 if real else 0.0)).pow(2).mean()


class ImagePool:
    """CycleGAN's history of generated images (pool size 50): the discriminators see, for each new
    image, with probability 1/2 a stored one (which the new image replaces), else the new one.
    ``state_dict``/``load_state_dict`` let a stage checkpoint it."""

    def __init__(self, size: int = 50):
        self.size, self.images = size, []

    def query(self, images: torch.Tensor, rng) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach().split(1):
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif rng.random() > 0.5:
                k = int(rng.integers(self.size))
                out.append(self.images[k].to(image.device))
                self.images[k] = image
            else:
                out.append(image)
        return torch.cat(out)

    def state_dict(self) -> dict:
        return {'images': torch.cat(self.images) if self.images else torch.zeros(0)}

    def load_state_dict(self, state: dict) -> None:
        self.images = list(state['images'].split(1)) if len(state['images']) else []


@torch.no_grad()
def translate(generator: nn.Module, images: RowView, path: Path, device: str) -> np.ndarray:
    """``generator``'s translations of ``images``, a batch at a time, written to the ``.npy``
    file ``path`` (float32) and returned memory-mapped read-only, so that a translated real source
    set is never held whole; the file is complete or absent (written under another name, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f'{path.stem}.partial-{os.getpid()}.npy')
    out = np.lib.format.open_memmap(partial, 'w+', np.float32, images.shape)
    start = 0
    for rows in images.batches():
        out[start:start + len(rows)] = generator(to_tensor(rows, device)).cpu().numpy()
        start += len(rows)
    out.flush()
    del out
    partial.replace(path)
    return np.load(path, mmap_mode='r')
