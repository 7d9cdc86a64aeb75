"""Segmentation losses of seed 002 §4.1 / seed 000 Eq. 1-2: Dice + BCE (UNet), binary focal (DeepLabv3+);
cross-entropy over C classes with 255 ignored for the urban task (the originals' DeepLab-v2 loss).
And the berHu depth loss of DADA and the depth-distribution method.

Each takes an optional ``valid`` mask (1 = pixel counts, 0 = ignored), the ignore label of BDL's
pseudo-labels: the loss is then taken over the valid pixels only. Logits are taken in float32 (under
bf16 autocast the network's outputs are bf16; the losses are not).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _mean(values: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    if valid is None:
        return values.mean()
    return (values * valid).sum() / valid.sum().clamp_min(1)


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0,
                   valid: torch.Tensor | None = None) -> torch.Tensor:
    """1 - soft Dice of sigmoid probabilities over the whole batch (its valid pixels)."""
    probs = torch.sigmoid(logits.float())
    if valid is not None:
        probs, target = probs * valid, target * valid
    inter = (probs * target).sum()
    return 1.0 - (2 * inter + smooth) / (probs.sum() + target.sum() + smooth)


def dice_bce_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """L_s = L_dice + L_bce (seed 000 Eq. 1, UNet)."""
    bce = F.binary_cross_entropy_with_logits(logits.float(), target, reduction='none')
    return soft_dice_loss(logits, target, valid=valid) + _mean(bce, valid)


def binary_focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, alpha: float = 0.75,
                      valid: torch.Tensor | None = None) -> torch.Tensor:
    """Binary focal loss (Lin et al. 2017) with gamma 2.0, alpha 0.75 (seed 002 §4.1, DeepLabv3+)."""
    logits = logits.float()
    log_p = F.logsigmoid(logits)
    log_not_p = F.logsigmoid(-logits)
    pos = -alpha * target * (1 - log_p.exp()) ** gamma * log_p
    neg = -(1 - alpha) * (1 - target) * log_p.exp() ** gamma * log_not_p
    return _mean(pos + neg, valid)


def cross_entropy_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None,
                       ignore_index: int = 255) -> torch.Tensor:
    """Mean cross-entropy of (N, C, H, W) logits against (N, H, W) class ids over the pixels not
    labelled ``ignore_index`` (nor 0 in ``valid``); 0 when no pixel is labelled (PyTorch's mean
    over no pixel is NaN, which a batch of pseudo-labels may hit)."""
    target = target.long()
    if valid is not None:
        target = torch.where(valid.reshape(target.shape) > 0, target, torch.full_like(target, ignore_index))
    if not bool((target != ignore_index).any()):
        return logits.float().sum() * 0.0
    return F.cross_entropy(logits.float(), target, ignore_index=ignore_index)


def class_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """What a method predicts: skin probabilities (N, H, W) from one sigmoid channel, else the
    softmax over the C class channels (N, C, H, W)."""
    return torch.sigmoid(logits)[:, 0] if logits.shape[1] == 1 else torch.softmax(logits.float(), 1)


SEGMENTATION_LOSSES = {'dice_bce': dice_bce_loss, 'focal': binary_focal_loss, 'cross_entropy': cross_entropy_loss}


def segmentation_loss(name: str):
    if name not in SEGMENTATION_LOSSES:
        raise KeyError(f'unknown segmentation loss {name!r}; expected one of {sorted(SEGMENTATION_LOSSES)}')
    return SEGMENTATION_LOSSES[name]


def berhu_loss(pred: torch.Tensor, target: torch.Tensor, threshold: float = 0.2) -> torch.Tensor:
    """Reverse Huber: |x| where |x| <= c, (x^2 + c^2) / (2c) beyond, c = ``threshold`` * max |x| over the batch."""
    diff = (pred - target).abs()
    c = (threshold * diff.max()).detach().clamp_min(1e-12)
    return torch.where(diff <= c, diff, (diff ** 2 + c ** 2) / (2 * c)).mean()
