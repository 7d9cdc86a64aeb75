"""GLSS's VAE with the Sobel edge skip (seed 002 Fig. 1 and §4.1; layer sizes of the official code).

Encoder g_phi: conv 64 (3x3, stride 1), then stride-2 convs of ``width`` channels down to 4x4,
dense ``hidden``, and dense heads for mu and log sigma^2 of a ``latent``-dim Gaussian.
Decoder h_theta: dense ``hidden`` -> dense 2*hidden -> 4x4x``width`` -> stride-2 transposed convs to
a coarse image (tanh); the coarse image is concatenated with tanh(Sobel edges of the input) and
refined by two convs and a final conv + tanh. LeakyReLU(0.2), no normalisation, N(0, 0.02) init.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_edges(images: torch.Tensor) -> torch.Tensor:
    """Per-channel Sobel responses (dy, dx) of (N, C, H, W) images -> (N, 2C, H, W)."""
    c = images.shape[1]
    kernel = torch.stack([_SOBEL_X.t(), _SOBEL_X]).to(images)[:, None].repeat(c, 1, 1, 1)
    return F.conv2d(F.pad(images, (1, 1, 1, 1), mode='replicate'), kernel, groups=c)


def _act():
    return nn.LeakyReLU(0.2)


class EdgeSkipVAE(nn.Module):
    """The VAE of seed 002 Fig. 1; ``edge_skip=False`` drops the edge concatenation (Table 4)."""

    def __init__(self, image_size: int = 128, channels: int = 1, latent: int = 64, width: int = 128,
                 stem: int = 64, hidden: int = 1024, edge_skip: bool = True):
        super().__init__()
        steps = int(math.log2(image_size // 4))
        if 4 * 2 ** steps != image_size:
            raise ValueError(f'image_size must be 4 * 2^k, got {image_size}')
        self.latent, self.width, self.edge_skip = latent, width, edge_skip
        enc = [nn.Conv2d(channels, stem, 3, padding=1), _act()]
        for i in range(steps):
            enc += [nn.Conv2d(stem if i == 0 else width, width, 3, stride=2, padding=1), _act()]
        self.encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(width * 16, hidden), _act())
        self.mu = nn.Linear(hidden, latent)
        self.logvar = nn.Linear(hidden, latent)
        self.project = nn.Sequential(nn.Linear(latent, hidden), _act(), nn.Linear(hidden, 2 * hidden), _act(),
                                     nn.Linear(2 * hidden, width * 16), _act())
        up = []
        for _ in range(steps - 1):
            up += [nn.ConvTranspose2d(width, width, 4, stride=2, padding=1), _act()]
        self.upsample = nn.Sequential(*up, nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1), nn.Tanh())
        refine_in = channels * (3 if edge_skip else 1)
        self.refine = nn.Sequential(nn.Conv2d(refine_in, width, 3, padding=1), _act(),
                                    nn.Conv2d(width, width, 3, padding=1), _act(),
                                    nn.Conv2d(width, channels, 3, padding=1), nn.Tanh())
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)

    def encoder_parameters(self):
        return [*self.encoder.parameters(), *self.mu.parameters(), *self.logvar.parameters()]

    def decoder_parameters(self):
        return [*self.project.parameters(), *self.upsample.parameters(), *self.refine.parameters()]

    def encode(self, images: torch.Tensor):
        h = self.encoder(images)
        return self.mu(h), self.logvar(h)

    def decode(self, z: torch.Tensor, edges: torch.Tensor | None) -> torch.Tensor:
        """h_theta(z); ``edges`` are the Sobel edges of the image being reconstructed or searched."""
        coarse = self.upsample(self.project(z).view(-1, self.width, 4, 4))
        if self.edge_skip:
            coarse = torch.cat([coarse, torch.tanh(edges)], 1)
        return self.refine(coarse)

    def forward(self, images: torch.Tensor):
        mu, logvar = self.encode(images)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode(z, sobel_edges(images)), mu, logvar
