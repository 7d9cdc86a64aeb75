"""CLAN (Luo et al., CVPR 2019): category-level adversaries weighted by classifier disagreement.

Two classifiers read the decoder's features; the prediction is p1 + p2 (logits) and both are
trained on the source. A weight-discrepancy loss (cos(W1, W2) + 1) keeps them different. On the
target, the per-pixel disagreement M = 1 - cos(softmax p1, softmax p2) weights the adversarial
loss of one discriminator on softmax(p1 + p2), whose output is upsampled to the input size:
BCE * (epsilon + lambda_local * M) after a preheat (plain BCE before); the discriminator's target
loss is weighted the same way, and neither discriminator loss is halved. Official code: epsilon
0.4, lambda_local 10 (SYNTHIA) / 40 (GTA), preheat 5k of 100k iterations (the weighting starts
after the preheat iteration), damping 1 - i / max_iter on the adversarial and discrepancy terms,
both optimisers' lr warmed up linearly over the preheat, then poly; the discriminator's output
upsampled bilinearly with ``align_corners=True``; both classifiers at 10x the base lr. Seed 000
§2.2: lr 2.5e-4, weight decay 5e-4, lambda_weight 0.01, lambda_adv 0.001.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from udabench.registry import METHODS

from .adaptation import TargetAdaptation
from .discriminator import two_class_probs
from .losses import class_probabilities


def weight_discrepancy(a: torch.nn.Module, b: torch.nn.Module) -> torch.Tensor:
    """cos(W1, W2) + 1 over the flattened parameters of two classifiers: 0 when opposite, 2 when equal."""
    w1 = torch.cat([p.flatten() for p in a.parameters()])
    w2 = torch.cat([p.flatten() for p in b.parameters()])
    return F.cosine_similarity(w1, w2, dim=0) + 1


def disagreement(logits1: torch.Tensor, logits2: torch.Tensor) -> torch.Tensor:
    """Per-pixel 1 - cos(softmax p1, softmax p2), (N, 1, H, W)."""
    return 1 - F.cosine_similarity(two_class_probs(logits1), two_class_probs(logits2), dim=1).unsqueeze(1)


@METHODS.register_module(name='clan')
class CLAN(TargetAdaptation):
    disc_loss_scale = 1.0

    def __init__(self, lambda_weight: float = 0.01, lambda_adv: float = 1e-3, lambda_local: float = 10.0,
                 epsilon: float = 0.4, preheat_fraction: float = 0.05, **kwargs):
        super().__init__(**kwargs)
        self.lambda_weight, self.lambda_adv, self.lambda_local = lambda_weight, lambda_adv, lambda_local
        self.epsilon, self.preheat_fraction = epsilon, preheat_fraction

    def prepare(self, ctx):
        head = self.net.model.decode_head
        self.classifier2 = copy.deepcopy(head.conv_seg)
        torch.nn.init.normal_(self.classifier2.weight, 0, 0.01)   # a second, different classifier
        torch.nn.init.zeros_(self.classifier2.bias)

    def head_modules(self):
        return [*super().head_modules(), self.classifier2]

    def preheat(self) -> float:
        return self.preheat_fraction * self.stop_iters

    def lr_factor(self, iteration):
        """Linear warm-up over the preheat, then poly (CLAN's adjust_learning_rate and _D)."""
        return iteration / self.preheat() if iteration < self.preheat() else super().lr_factor(iteration)

    def damping(self, iteration):
        return 1 - iteration / self.max_iters

    def outputs(self, images):
        logits1, feats = self.net.capture(images, 'decode_head.conv_seg', take='input')
        logits2 = F.interpolate(self.classifier2(feats), images.shape[-2:], mode='bilinear', align_corners=False)
        return {'main': logits1 + logits2, 'p1': logits1, 'p2': logits2}

    def source_loss(self, out, batch):
        return {'seg': self.seg_loss(out['p1'], batch['ys']) + self.seg_loss(out['p2'], batch['ys'])}

    def regulariser(self, iteration):
        head = self.net.model.decode_head.conv_seg
        return {'weight_discrepancy': self.lambda_weight * self.damping(iteration) * 2
                * weight_discrepancy(head, self.classifier2)}

    def discriminator_channels(self, num_classes):
        return {'main': num_classes}

    def discriminator_inputs(self, out):
        return {'main': two_class_probs(out['main'])}

    def discriminate(self, name, inputs):
        return F.interpolate(self.discriminators[name](inputs), inputs.shape[-2:], mode='bilinear', align_corners=True)

    def adversarial_weights(self, iteration):
        return {'main': self.lambda_adv * self.damping(iteration)}

    def pixel_weights(self, out, iteration):
        if iteration <= self.preheat():
            return {}
        return {'main': self.epsilon + self.lambda_local * disagreement(out['p1'], out['p2'])}

    @torch.no_grad()
    def predict(self, images):
        self.net.eval()
        self.classifier2.eval()
        return class_probabilities(self.outputs(images)['main'])
