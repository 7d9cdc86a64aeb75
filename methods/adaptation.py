"""The training loop shared by the methods that see labelled source and unlabelled target batches.

Written after ADVENT's short training step: (1) with the discriminators frozen, the segmentation
loss on a source batch plus, on a target batch, the method's adversarial losses (fool the
discriminators: source label) and any other target loss; (2) the discriminators learn to tell the
detached source inputs (label 0) from the target ones (label 1), each of the two losses halved.
A method supplies only its outputs, its discriminator inputs and weights, and its extra losses.

Shared settings (AdaptSegNet/ADVENT/CLAN code; seed 000 §2.2): segmentation SGD lr 2.5e-4,
momentum 0.9, weight decay 5e-4; discriminators Adam lr 1e-4, betas (0.9, 0.99); both poly 0.9.
Deviation: the segmentation network starts from the suite's Source Only network (the originals
start from ImageNet weights, which cannot be had here; with random init SGD at 2.5e-4 learns
nothing in a CPU budget). ``warm_start=False`` starts from random weights instead.
BatchNorm is frozen (running statistics and affine parameters), as in every original: their
DeepLab-v2 ResNet-101 trains with frozen BatchNorm. ``freeze_bn=False`` lets it adapt.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from udabench.engine import batch_indices, build_optimizer, poly_lr

from .base import FitContext, UDAMethod, check_target_fraction, source_network, target_fraction_indices, to_tensor
from .discriminator import SOURCE_LABEL, TARGET_LABEL, FCDiscriminator, domain_bce
from .losses import segmentation_loss
from .networks import SegmentationNet


class TargetAdaptation(UDAMethod):
    """Base class; subclasses set ``discriminator_channels`` and override the hooks below."""

    needs_source_depth = False
    #: Each discriminator loss is halved (AdaptSegNet/ADVENT code); DADA's code does not halve.
    disc_loss_scale = 0.5

    def __init__(self, iterations: int = 1000, batch_size: int = 8,
                 optimizer: dict | None = None, disc_optimizer: dict | None = None, poly_power: float = 0.9,
                 warm_start: bool = True, target_fraction: float = 1.0, disc_width: int = 64,
                 freeze_bn: bool = True):
        super().__init__()
        self.iterations, self.batch_size, self.poly_power = iterations, batch_size, poly_power
        self.optimizer = optimizer or dict(type='SGD', lr=2.5e-4, momentum=0.9, weight_decay=5e-4)
        self.disc_optimizer = disc_optimizer or dict(type='Adam', lr=1e-4, betas=(0.9, 0.99))
        self.warm_start, self.target_fraction, self.disc_width = warm_start, check_target_fraction(target_fraction), disc_width
        self.freeze_bn = freeze_bn
        self.aux_head = False
        self.extra_optimizers: dict = {}

    # ------------------------------------------------------------------ hooks for the methods
    def discriminator_channels(self, num_classes: int) -> dict:
        """name -> input channels of each discriminator (none by default)."""
        return {}

    def outputs(self, images: torch.Tensor) -> dict:
        """The network's outputs the losses need; ``'main'`` holds the logits."""
        return {'main': self.net(images)}

    def source_loss(self, out: dict, batch: dict) -> dict:
        """Losses on the labelled source batch: ``batch['ys']`` masks, ``batch['ds']`` depth (DADA)."""
        return {'seg': self.seg_loss(out['main'], batch['ys'])}

    def discriminator_inputs(self, out: dict) -> dict:
        """name -> what discriminator ``name`` sees for these outputs."""
        return {}

    def adversarial_weights(self, iteration: int) -> dict:
        """name -> weight of the generator's adversarial loss for discriminator ``name``."""
        return {}

    def pixel_weights(self, out: dict, iteration: int) -> dict:
        """name -> optional per-pixel weight of the target adversarial losses (CLAN)."""
        return {}

    def discriminate(self, name: str, inputs: torch.Tensor) -> torch.Tensor:
        return self.discriminators[name](inputs)

    def target_loss(self, out: dict, batch: dict, iteration: int) -> dict:
        """Other losses on the target outputs (MinEnt's entropy; BDL's pseudo-labels ``batch['yt']``)."""
        return {}

    def regulariser(self, iteration: int) -> dict:
        """Losses on the parameters (CLAN's weight discrepancy)."""
        return {}

    # -------------------------------------------------------------------------- the loop
    def fit(self, ctx: FitContext) -> None:
        self.build(ctx)
        self.adapt(ctx, ctx.source.normalised_images(), 'adaptation')

    def build(self, ctx: FitContext) -> None:
        """The segmentation network (warm-started), the method's modules and its discriminators."""
        torch.manual_seed(ctx.seed)
        self.net = SegmentationNet(**ctx.net, aux_head=self.aux_head).to(ctx.device)
        if self.warm_start:
            missing = self.net.load_state_dict(source_network(ctx).state_dict(), strict=False).missing_keys
            assert all('auxiliary_head' in k for k in missing), missing
        self.prepare(ctx)
        num_classes = ctx.net.get('num_classes', 1)
        self.discriminators = nn.ModuleDict({k: FCDiscriminator(c, self.disc_width)
                                             for k, c in self.discriminator_channels(max(num_classes, 2)).items()})
        self.discriminators.to(ctx.device)
        self.seg_loss = segmentation_loss(ctx.seg_recipe['loss'])

    def target_training_indices(self, ctx: FitContext) -> np.ndarray:
        """The target images every stage of this method trains on: all of them, or the seeded
        ``target_fraction`` of them (seed 000 §2.4, Table 1)."""
        count = len(ctx.target_images)
        if self.target_fraction == 1.0:
            return np.arange(count)
        return np.sort(target_fraction_indices(count, self.target_fraction, ctx.seed))

    def adapt(self, ctx: FitContext, source_images: np.ndarray, stage: str,
              target_labels: np.ndarray | None = None) -> None:
        """One checkpointed adaptation stage on ``source_images`` (BDL passes translated ones) and
        the target images; ``target_labels`` are pseudo-labels (-1 = ignore) for BDL's SSL."""
        seg_opt = build_optimizer(self.trainable_parameters(), self.optimizer)
        disc_opt = build_optimizer(self.discriminators.parameters(), self.disc_optimizer) if self.discriminators else None
        arrays = {'xs': source_images, 'ys': ctx.source.masks[:, None].astype(np.float32)}
        if self.needs_source_depth:
            arrays['ds'] = ctx.source.depth[:, None].astype(np.float32)
        target = {'xt': ctx.target_images}
        if target_labels is not None:
            target['yt'] = target_labels[:, None].astype(np.float32)
        keep = self.target_training_indices(ctx)
        arrays.update({k: v[keep] for k, v in target.items()})

        def step(it):
            poly_lr(seg_opt, [self.optimizer['lr']] * len(seg_opt.param_groups), it, self.iterations, self.poly_power)
            if disc_opt:
                poly_lr(disc_opt, [self.disc_optimizer['lr']], it, self.iterations, self.poly_power)
            src = batch_indices(len(source_images), self.batch_size, it, ctx.seed)
            tgt = batch_indices(len(arrays['xt']), self.batch_size, it, ctx.seed + 1)
            batch = {k: to_tensor(v[tgt if k in target else src], ctx.device) for k, v in arrays.items()}
            return self.train_step(batch, it, seg_opt, disc_opt)

        self.train()
        ctx.stages.run(stage, step, self.iterations,
                       {'method': self, 'seg_opt': seg_opt, **({'disc_opt': disc_opt} if disc_opt else {}),
                        **self.extra_optimizers})
        self.eval()

    def train(self, mode: bool = True):
        """Train mode, with the segmentation network's BatchNorm layers kept frozen (``freeze_bn``)."""
        super().train(mode)
        if mode and self.freeze_bn and hasattr(self, 'net'):
            for module in self.net.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval().requires_grad_(False)
        return self

    def prepare(self, ctx: FitContext) -> None:
        """Build method-specific modules before the optimisers are made (CLAN's second classifier).
        Optimisers of a method's own networks go in ``self.extra_optimizers`` (checkpointed with the stage)."""

    def trainable_parameters(self):
        return self.net.parameters()

    def train_step(self, batch: dict, it: int, seg_opt, disc_opt) -> dict:
        seg_opt.zero_grad(set_to_none=True)
        if disc_opt:
            disc_opt.zero_grad(set_to_none=True)
        self.discriminators.requires_grad_(False)
        src = self.outputs(batch['xs'])
        tgt = self.outputs(batch['xt'])
        losses = {**self.source_loss(src, batch), **self.target_loss(tgt, batch, it), **self.regulariser(it)}
        d_src, d_tgt = self.discriminator_inputs(src), self.discriminator_inputs(tgt)
        weights, pixel = self.adversarial_weights(it), self.pixel_weights(tgt, it)
        for name in self.discriminators:
            losses[f'adv_{name}'] = weights[name] * domain_bce(self.discriminate(name, d_tgt[name]), SOURCE_LABEL,
                                                               pixel.get(name))
        sum(losses.values()).backward()
        logs = {k: v.item() for k, v in losses.items()}
        if disc_opt:
            self.discriminators.requires_grad_(True)
            for name in self.discriminators:
                w = pixel.get(name)
                d_loss = self.disc_loss_scale * (domain_bce(self.discriminate(name, d_src[name].detach()), SOURCE_LABEL)
                                + domain_bce(self.discriminate(name, d_tgt[name].detach()), TARGET_LABEL,
                                             None if w is None else w.detach()))
                d_loss.backward()
                logs[f'disc_{name}'] = d_loss.item()
            disc_opt.step()
        seg_opt.step()
        return logs
