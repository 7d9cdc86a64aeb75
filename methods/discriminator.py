"""The output-space discriminator and its losses, shared by AdaptSegNet, AdvEnt, CLAN, BDL and DADA.

Fully convolutional (AdaptSegNet, Tsai et al. 2018 §3.1; ADVENT's code): five 4x4 convs, stride 2,
padding 1, channels C -> 64 -> 128 -> 256 -> 512 -> 1, LeakyReLU 0.2 after the first four, no
normalisation; it outputs logits trained with BCE, source label 0 and target label 1.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

SOURCE_LABEL, TARGET_LABEL = 0.0, 1.0


class FCDiscriminator(nn.Module):
    def __init__(self, in_channels: int, width: int = 64):
        super().__init__()
        chans = [in_channels, width, width * 2, width * 4, width * 8]
        layers = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        self.body = nn.Sequential(*layers, nn.Conv2d(chans[-1], 1, 4, stride=2, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def domain_bce(logits: torch.Tensor, label: float, weight: torch.Tensor | None = None) -> torch.Tensor:
    """BCE of discriminator logits against a constant domain label, optionally weighted per pixel."""
    logits = logits.float()
    target = torch.full_like(logits, label)
    if weight is None:
        return F.binary_cross_entropy_with_logits(logits, target)
    return (F.binary_cross_entropy_with_logits(logits, target, reduction='none') * weight).mean()


def two_class_probs(logits: torch.Tensor) -> torch.Tensor:
    """Binary logits (N, 1, H, W) as the 2-class softmax (N, 2, H, W) the multi-class methods use;
    multi-class logits are soft-maxed as they are."""
    if logits.shape[1] == 1:
        p = torch.sigmoid(logits)
        return torch.cat([1 - p, p], 1)
    return torch.softmax(logits, 1)


def predicted_classes(logits: torch.Tensor) -> torch.Tensor:
    """(N, H, W) argmax classes of binary or multi-class logits (detached; p = 0.5 goes to class 0)."""
    return two_class_probs(logits.detach()).argmax(1)


def weighted_self_information(probs: torch.Tensor) -> torch.Tensor:
    """ADVENT's weighted self-information map -p * log2(p) / log2(C) per channel (Vu et al. 2019, Eq. 3)."""
    c = probs.shape[1]
    return -probs * torch.log2(probs + 1e-30) / math.log2(c)


def entropy_loss(probs: torch.Tensor) -> torch.Tensor:
    """MinEnt: the mean over pixels of the normalised entropy sum_c -p log2 p / log2 C (Vu et al. 2019, Eq. 4)."""
    return weighted_self_information(probs).sum(1).mean()
