"""Supervised-on-target oracle (seed 002 Table 1): trained on 80 % of the labelled target, tested on 20 %."""
from __future__ import annotations

import torch

from udabench.registry import METHODS

from .base import FitContext, UDAMethod, train_segmentation
from .networks import SegmentationNet


@METHODS.register_module(name='oracle')
class SupervisedTarget(UDAMethod):
    tasks = ('skin', 'urban')
    needs_target_labels = True
    uses_target_images = False

    def fit(self, ctx: FitContext) -> None:
        torch.manual_seed(ctx.seed)
        self.net = SegmentationNet(**ctx.net).to(ctx.device)
        train_segmentation(self.net, ctx.target_labelled, ctx.seg_recipe, ctx.stages, 'segmentation',
                           ctx.seed, ctx.device, ctx.precision)
