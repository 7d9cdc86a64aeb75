"""GLSS's VAE with the Sobel edge skip (seed 002 Fig. 1 and §4.1; layer sizes of the official code).

Encoder g_phi: conv ``stem`` (3x3, stride 1), then stride-2 convs of ``width`` channels down to 4x4,
dense ``hidden``, and dense heads for mu and log sigma^2 of a ``latent``-dim Gaussian.
Decoder h_theta: dense ``hidden`` -> dense 16*``width`` reshaped to 4x4x``width`` (as the official
code: 1024 -> 2048 = 4x4x128) -> stride-2 3x3 transposed convs ('same', as the official code) to a
coarse image (tanh); the coarse image is concatenated with the Sobel edges of the input (reflect
padding, as TF's ``sobel_edges``) and refined by two convs and a final conv + tanh. LeakyReLU(0.2),
no normalisation. On the urban task's 2:1 RGB images (``channels`` 3) the bottleneck is 4x8 and
the Sobel edges are taken per channel, as TF's ``sobel_edges`` (the official code) does on a
multi-channel image; the paper's Table 3 gives no other rule.

Options and deviations:
* ``init``: the paper is silent; ``'kaiming'`` (default, He init for LeakyReLU(0.2)) keeps the
  signal from z alive through the decoder, while the official code's ``'normal_0.02'`` shrinks the
  gain from z to the coarse image to ~1e-5 at the ``cpu`` widths, so the decoder paints through the
  edge skip and never uses z. ``'kaiming_small_out'`` keeps N(0, 0.02) on the two layers before a
  tanh image (in a short scratch run at ``cpu``, 160 iterations, the decoder then barely used z either).
* ``edge_tanh``: the paper concatenates the edges "via a tanh non linearity" (ambiguous: the tanh
  may be the coarse image's); the official code feeds the raw edges. Default False (official).
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
INITS = ('kaiming', 'kaiming_small_out', 'normal_0.02')


@functools.lru_cache(maxsize=None)
def _sobel_kernel(channels: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The (2C, 1, 3, 3) kernel, made once per device and dtype (not copied to the device per call)."""
    return torch.stack([_SOBEL_X.t(), _SOBEL_X]).to(device, dtype)[:, None].repeat(channels, 1, 1, 1)


def sobel_edges(images: torch.Tensor) -> torch.Tensor:
    """Per-channel Sobel responses (dy, dx) of (N, C, H, W) images -> (N, 2C, H, W), reflect padding."""
    c = images.shape[1]
    return F.conv2d(F.pad(images, (1, 1, 1, 1), mode='reflect'), _sobel_kernel(c, images.device, images.dtype), groups=c)


def _act():
    return nn.LeakyReLU(0.2)


def init_weights(module: nn.Module, init: str, outputs=()) -> None:
    """``'kaiming'``: He-normal for LeakyReLU(0.2) (fan-in); ``'kaiming_small_out'``: the same but
    N(0, 0.02) for the ``outputs`` layers (those before a tanh image), so that the first images are
    not saturated noise; ``'normal_0.02'``: N(0, 0.02) everywhere. Zero biases."""
    if init not in INITS:
        raise KeyError(f'unknown method.vae.init {init!r}; expected one of {INITS}')
    small = {id(m) for m in outputs} if init == 'kaiming_small_out' else set()
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if init != 'normal_0.02' and id(m) not in small:
                nn.init.kaiming_normal_(m.weight, a=0.2, nonlinearity='leaky_relu')
            else:
                nn.init.normal_(m.weight, 0.0, 0.02)
            nn.init.zeros_(m.bias)


def _up(cin: int, cout: int) -> nn.ConvTranspose2d:
    """3x3 stride-2 transposed conv that doubles the size (Keras 'same')."""
    return nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)


def bottleneck(image_size: int | tuple) -> tuple[tuple[int, int], int]:
    """((rows, columns) at the 4-row bottleneck, stride-2 steps) for square ``image_size`` = 4 * 2^k
    or (H, W) with H = 4 * 2^k and W a multiple of 2^k (the urban task's 2:1 images: 4 x 8)."""
    h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    steps = int(math.log2(max(h // 4, 1)))
    if 4 * 2 ** steps != h or w % 2 ** steps or w < 2 ** steps:
        raise ValueError(f'VAE image size must be H = 4 * 2^k by a multiple of 2^k, got {h} x {w}')
    return (4, w // 2 ** steps), steps


class EdgeSkipVAE(nn.Module):
    """The VAE of seed 002 Fig. 1; ``edge_skip=False`` drops the edge concatenation (Table 4)."""

    def __init__(self, image_size: int | tuple = 128, channels: int = 1, latent: int = 64, width: int = 128,
                 stem: int = 64, hidden: int = 1024, edge_skip: bool = True, edge_tanh: bool = False,
                 init: str = 'kaiming'):
        super().__init__()
        self.bottleneck, steps = bottleneck(image_size)
        cells = self.bottleneck[0] * self.bottleneck[1]
        self.latent, self.width, self.edge_skip, self.edge_tanh = latent, width, edge_skip, edge_tanh
        enc = [nn.Conv2d(channels, stem, 3, padding=1), _act()]
        for i in range(steps):
            enc += [nn.Conv2d(stem if i == 0 else width, width, 3, stride=2, padding=1), _act()]
        self.encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(width * cells, hidden), _act())
        self.mu = nn.Linear(hidden, latent)
        self.logvar = nn.Linear(hidden, latent)
        self.project = nn.Sequential(nn.Linear(latent, hidden), _act(), nn.Linear(hidden, width * cells), _act())
        up = []
        for _ in range(steps - 1):
            up += [_up(width, width), _act()]
        self.upsample = nn.Sequential(*up, _up(width, channels), nn.Tanh())
        refine_in = channels * (3 if edge_skip else 1)
        self.refine = nn.Sequential(nn.Conv2d(refine_in, width, 3, padding=1), _act(),
                                    nn.Conv2d(width, width, 3, padding=1), _act(),
                                    nn.Conv2d(width, channels, 3, padding=1), nn.Tanh())
        init_weights(self, init, outputs=(self.upsample[-2], self.refine[-2]))

    def encoder_parameters(self):
        return [*self.encoder.parameters(), *self.mu.parameters(), *self.logvar.parameters()]

    def decoder_parameters(self):
        return [*self.project.parameters(), *self.upsample.parameters(), *self.refine.parameters()]

    def encode(self, images: torch.Tensor):
        h = self.encoder(images)
        return self.mu(h), self.logvar(h)

    def decode(self, z: torch.Tensor, edges: torch.Tensor | None) -> torch.Tensor:
        """h_theta(z); ``edges`` are the Sobel edges of the image being reconstructed or searched."""
        coarse = self.upsample(self.project(z).view(-1, self.width, *self.bottleneck))
        if self.edge_skip:
            coarse = torch.cat([coarse, torch.tanh(edges) if self.edge_tanh else edges], 1)
        return self.refine(coarse)

    def forward(self, images: torch.Tensor):
        mu, logvar = self.encode(images)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode(z, sobel_edges(images)), mu, logvar
