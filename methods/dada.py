"""DADA (Vu et al., ICCV 2019): depth-aware adversarial adaptation with privileged source depth.

A depth head on the features the classifier head reads (ResNet layer4 in the original): 1x1 conv
C -> C/4, ReLU, 3x3 conv, ReLU, 1x1 conv -> C/16; the predicted (inverse) depth is the channel
mean of that map, and a 1x1 conv back to C + ReLU gives a map that multiplies the features
before the segmentation head (feature fusion). The depth is regressed on the source with the
berHu loss; the discriminator sees the weighted self-information map times the predicted depth
(depth-aware fusion), trained as in AdvEnt. Official weights: seg 1.0, depth 0.001, adv 0.001,
discriminator losses not halved; the classifier, the depth head and the fusion at 10x the base
lr; poly horizon 250k iterations, stopped at 90k. Seed 000 §2.2 grid: lambda_seg in {0.25, 0.5, 1}
x lr in {2.5e-4, 1e-4, 3e-4}; its reported best, lambda_seg 0.5 / lr 2.5e-4, is the default. The
depth target is inverse depth, 1 / metres (the original uses 65536 / (SYNTHIA's 16-bit depth + 1),
i.e. inverse depth in its own units).

Deviation: the fusion starts as the identity (its last conv zero-weighted with bias 1, so the
gate ReLU(.) is 1 everywhere): the original trains all of it from ImageNet weights, but here the
classifier is warm-started from the Source Only network and a randomly initialised gate would
scramble the features it reads from iteration 0.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from udabench.registry import METHODS

from .adaptation import DepthAwareAdaptation
from .losses import berhu_loss, class_probabilities
from .networks import regression_convs


class DepthFusion(nn.Module):
    """DADA's depth head and feature-fusion map for features of ``channels`` channels."""

    def __init__(self, channels: int):
        super().__init__()
        self.head = regression_convs(channels)
        self.fuse = nn.Sequential(nn.Conv2d(self.head[-1].out_channels, channels, 1), nn.ReLU(inplace=True))
        nn.init.zeros_(self.fuse[0].weight)   # gate ReLU(0 * d + 1) = 1: the fusion starts as the identity
        nn.init.ones_(self.fuse[0].bias)

    def forward(self, feats: torch.Tensor):
        depth_feats = self.head(feats)
        return depth_feats.mean(1, keepdim=True), feats * self.fuse(depth_feats)


@METHODS.register_module(name='dada')
class DADA(DepthAwareAdaptation):
    horizon_ratio = 250 / 90
    depth_cue = 'depth'

    def __init__(self, lambda_seg: float = 0.5, lambda_depth: float = 1e-3, lambda_adv: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.lambda_seg, self.lambda_depth, self.lambda_adv = lambda_seg, lambda_depth, lambda_adv

    def prepare(self, ctx):
        if ctx.source.depth is None:
            raise ValueError(f'DADA needs source depth, but the source set {ctx.source.name} ({ctx.source.description}) '
                             'has none: put per-image depth under <data-root>/compaq/depth/<stem>.npy (metres) or '
                             '<stem>.png (16-bit millimetres) beside images/ and masks/ (see datasets/README.md)')
        head = self.net.model.decode_head
        if not isinstance(head.in_index, int):
            raise ValueError(f'DADA needs a decode head reading one feature map; {ctx.net["name"]} reads {head.in_index}')
        self.fusion = DepthFusion(head.in_channels).to(ctx.device)

    def head_modules(self):
        return [*super().head_modules(), self.fusion]

    def outputs(self, images):
        model = self.net.model
        feats = list(model.extract_feat(images))
        idx = model.decode_head.in_index
        depth, feats[idx] = self.fusion(feats[idx])
        size = images.shape[-2:]
        logits = F.interpolate(model.decode_head(feats), size, mode='bilinear', align_corners=False)
        return {'main': logits, 'depth': F.interpolate(depth, size, mode='bilinear', align_corners=False)}

    def source_loss(self, out, batch):
        inverse_depth = 1.0 / batch['ds'].clamp_min(1e-3)
        return {'seg': self.lambda_seg * self.seg_loss(out['main'], batch['ys']),
                'depth': self.lambda_depth * berhu_loss(out['depth'], inverse_depth)}

    @torch.no_grad()
    def predict(self, images):
        self.eval()
        return class_probabilities(self.outputs(images)['main'])
