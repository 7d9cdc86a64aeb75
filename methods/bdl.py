"""BDL: bidirectional learning (Li, Yuan & Vasconcelos, CVPR 2019).

Rounds alternate two models. (1) Translation: a CycleGAN (generators S->T and T->S, PatchGAN
discriminators, LSGAN, cycle weight 10 each way, identity 0.5 x 10, image pool of 50, lr constant
for the first half of the iterations then decayed linearly, as CycleGAN's 10 + 10 epochs) plus
BDL's perceptual loss from the current segmentation model M: the MSE between instance-normalised
logits of M on an image and on its translation (x0.1) and on its cycle reconstruction (x10).
(2) Segmentation adaptation on the *translated* source with a single-level output-space
adversarial loss (lambda_adv_target, AdaptSegNet's discriminator); from the second round on, also
the segmentation loss to pseudo-labels of the previous model on the target (SSL, ``lambda_ssl``).
Both the source and the SSL term use the network's own segmentation loss (focal / Dice + BCE, over
the labelled pixels), as the original's single ``CrossEntropy2d`` with ignore label 255 serves both.
Pseudo-labels (original SSL.py): a pixel's class is the argmax (p = 0.5 exactly goes to the
background, as argmax's first index), its class threshold the sorted confidence at index
round(n / 2) of the pixels predicted as that class, capped at 0.9; below it: ignored. They are
computed on the images the stage trains on only (the target fraction in the fraction study).
Seed 000 §2.2: segmentation lr 2.5e-4, discriminator lr 1e-4, grid lambda_adv_target in {1e-3,
2e-3, 5e-3} (best 1e-3). Poly horizon 250k iterations, stopped at 120k (the original's SSL
setting; it stops at 80k without SSL: one ratio serves both rounds here). Two rounds by default
(the original code ships two SSL steps); the first round's M is the Source Only network.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from udabench.datasets.base import RowView
from udabench.engine import batch_indices, build_optimizer
from udabench.registry import METHODS

from .adaptation import TargetAdaptation
from .base import BatchReader, FitContext
from .discriminator import two_class_probs
from .translation import ImagePool, PatchDiscriminator, ResnetGenerator, lsgan_loss, translate


@METHODS.register_module(name='bdl')
class BDL(TargetAdaptation):
    horizon_ratio = 250 / 120

    def __init__(self, lambda_adv_target: float = 1e-3, lambda_ssl: float = 1.0, rounds: int = 2, ssl_cap: float = 0.9,
                 translation: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.lambda_adv_target, self.lambda_ssl, self.rounds, self.ssl_cap = lambda_adv_target, lambda_ssl, rounds, ssl_cap
        self.translation = {**dict(iterations=2000, batch_size=4, width=64, downs=2, blocks=9, disc_width=64, pool_size=50,
                                   optimizer=dict(type='Adam', lr=2e-4, betas=(0.5, 0.999)), cycle=10.0,
                                   identity=0.5, perceptual_translated=0.1, perceptual_reconstructed=10.0),
                            **(translation or {})}

    def discriminator_channels(self, num_classes):
        return {'main': num_classes}

    def discriminator_inputs(self, out):
        return {'main': two_class_probs(out['main'])}

    def adversarial_weights(self, iteration):
        return {'main': self.lambda_adv_target}

    def target_loss(self, out, batch, iteration):
        if 'yt' not in batch:
            return {}
        labels = batch['yt']
        return {'ssl': self.lambda_ssl * self.seg_loss(out['main'], labels.clamp_min(0), valid=(labels >= 0).float())}

    def fit(self, ctx: FitContext) -> None:
        self.build(ctx)
        source = ctx.source.normalised_images()
        labels = None
        for k in range(self.rounds):
            translated = self.translate_source(ctx, source, f'translation_{k}')
            self.adapt(ctx, translated, f'adaptation_{k}', labels)
            self.translation_file(ctx, f'translation_{k}').unlink()   # made again from the checkpoint if resumed
            if k + 1 < self.rounds:
                labels = self.target_pseudo_labels(ctx, self.ssl_cap)

    def translate_source(self, ctx: FitContext, source: RowView, stage: str) -> RowView:
        """Train the CycleGAN of this round with the current model's perceptual loss; translate S -> T
        (``translate``: the translations are written beside the stage's checkpoint, and deleted when
        the adaptation stage that reads them is done)."""
        cfg, dev = self.translation, ctx.device
        channels = source.shape[1]
        gens = torch.nn.ModuleDict({d: ResnetGenerator(channels, cfg['width'], cfg['downs'], cfg['blocks'])
                                    for d in ('s2t', 't2s')}).to(dev)
        discs = torch.nn.ModuleDict({d: PatchDiscriminator(channels, cfg['disc_width']) for d in ('s', 't')}).to(dev)
        g_opt = build_optimizer(gens.parameters(), cfg['optimizer'])
        d_opt = build_optimizer(discs.parameters(), cfg['optimizer'])
        pools = {d: ImagePool(cfg['pool_size']) for d in ('s', 't')}
        constant = cfg['iterations'] // 2
        seg = copy.deepcopy(self.net).eval().requires_grad_(False)
        sources = BatchReader({'x': source}, dev)
        targets = BatchReader({'x': ctx.target_images.take(self.target_training_indices(ctx))}, dev)   # the fraction's too

        def seg_map(x):
            return F.instance_norm(seg(x))

        def step(it):
            for opt in (g_opt, d_opt):   # CycleGAN's linear decay after the constant half
                opt.param_groups[0]['lr'] = cfg['optimizer']['lr'] * (1 - max(0, it + 1 - constant)
                                                                        / (cfg['iterations'] - constant + 1))
            xs = sources.batch(batch_indices(len(sources), cfg['batch_size'], it, ctx.seed))['x']
            xt = targets.batch(batch_indices(len(targets), cfg['batch_size'], it, ctx.seed + 1))['x']
            discs.requires_grad_(False)
            with self.autocast():
                fake_t, fake_s = gens['s2t'](xs), gens['t2s'](xt)
                rec_s, rec_t = gens['t2s'](fake_t), gens['s2t'](fake_s)
                losses = {
                    'gan': lsgan_loss(discs['t'](fake_t), True) + lsgan_loss(discs['s'](fake_s), True),
                    'cycle': cfg['cycle'] * ((rec_s - xs).abs().mean() + (rec_t - xt).abs().mean()),
                    'identity': cfg['identity'] * cfg['cycle'] * ((gens['s2t'](xt) - xt).abs().mean()
                                                                  + (gens['t2s'](xs) - xs).abs().mean()),
                }
                ms, mt = seg_map(xs), seg_map(xt)
                losses['perceptual'] = (cfg['perceptual_translated'] * (F.mse_loss(seg_map(fake_t), ms) + F.mse_loss(seg_map(fake_s), mt))
                                        + cfg['perceptual_reconstructed'] * (F.mse_loss(seg_map(rec_s), ms) + F.mse_loss(seg_map(rec_t), mt)))
            g_opt.zero_grad(set_to_none=True)
            sum(losses.values()).backward()
            g_opt.step()
            discs.requires_grad_(True)
            rng = np.random.default_rng([ctx.seed, it])
            pooled_t, pooled_s = pools['t'].query(fake_t, rng), pools['s'].query(fake_s, rng)
            with self.autocast():
                d_loss = 0.5 * (lsgan_loss(discs['t'](xt), True) + lsgan_loss(discs['t'](pooled_t), False)
                                + lsgan_loss(discs['s'](xs), True) + lsgan_loss(discs['s'](pooled_s), False))
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_opt.step()
            return {**{k: v.detach() for k, v in losses.items()}, 'disc': d_loss.detach()}

        gens.train()
        ctx.stages.run(stage, step, cfg['iterations'], {'generators': gens, 'discriminators': discs,
                                                        'g_opt': g_opt, 'd_opt': d_opt,
                                                        'pool_s': pools['s'], 'pool_t': pools['t']})
        gens.eval()
        return RowView(translate(gens['s2t'], source, self.translation_file(ctx, stage), dev))

    @staticmethod
    def translation_file(ctx: FitContext, stage: str) -> Path:
        """Where translation ``stage`` writes its translated source images."""
        return ctx.stages.work_dir / f'{stage}.npy'
