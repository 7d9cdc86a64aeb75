"""DISE: domain-invariant structure extraction (Chang et al., CVPR 2019).

The segmentation network's encoder is the shared *structure* encoder; each domain has a private
*texture* encoder (a code vector); one decoder rebuilds an image from structure features and a
texture code. Recombining the structure of a source image with a target texture gives a
source->target translation that keeps the source labels (label transfer). Losses (official code,
SYNTHIA script): seg = main + lambda_seg * aux on the source and, with weight 1
(``lambda_label_transfer``), on the detached source->target translations (label transfer);
output-space adversarial (2e-4 aux, 1e-3 main) x 2.0; self-reconstruction x 0.5; translation GAN
(LSGAN, instance-norm PatchGAN updated every 5 iterations) x 0.01; translation reconstruction
x 0.05: the translated image keeps the structure (deep perceptual features) of its source and the
texture (spatial means of shallow features) of its target. Optimisers: segmentation SGD 2.5e-4,
encoders/decoder Adam 1e-3 (0.5, 0.999), domain classifiers Adam 1e-4 (0.9, 0.99), image
discriminators Adam 1e-4 (0.5, 0.999); poly on all of them. Seed 000 §2.2: grid lambda_seg (the
auxiliary weight) in {0.1, 0.25, 0.5}, lr 2.5e-4.

Deviations: the perceptual network is a frozen copy of the Source Only network's encoder (its
feature levels weighted 1/32 ... 1 from shallow to deep), not ImageNet VGG19, whose weights cannot
be had here. The private texture encoders read the image, not the shared encoder's low-level
features, and the decoder takes no domain flag (kept simpler; not yet matched). The poly horizon is
the stop iteration (the original's ratio was not checked). With ``lambda_label_transfer`` 0 (the
fine-tuning control) the translations are not passed through the segmentation network: their
forward in train mode would move its BatchNorm statistics toward the untrained decoder's images.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn

from udabench.engine import build_optimizer
from udabench.registry import METHODS

from .adaptation import TargetAdaptation
from .discriminator import two_class_probs
from .translation import PatchDiscriminator, ResidualBlock, conv_in_relu, lsgan_loss, upsample_in_relu

LAYER_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


class TextureEncoder(nn.Module):
    """A domain's private encoder: strided convs then global average pooling to a code vector."""

    def __init__(self, width: int, channels: int = 1):
        super().__init__()
        self.body = nn.Sequential(conv_in_relu(channels, width, 7), conv_in_relu(width, 2 * width, 3, 2),
                                  conv_in_relu(2 * width, 4 * width, 3, 2), conv_in_relu(4 * width, 4 * width, 3, 2),
                                  nn.AdaptiveAvgPool2d(1))

    def forward(self, x):
        return self.body(x)


class StructureTextureDecoder(nn.Module):
    """Structure features (C, H/s, W/s) + a tiled texture code -> image (channels, H, W) in [-1, 1]."""

    def __init__(self, structure_channels: int, code: int, width: int, stride: int, channels: int = 1):
        super().__init__()
        ups = int(math.log2(stride))
        top = width * 2 ** ups
        layers = [conv_in_relu(structure_channels + code, top, 1), ResidualBlock(top), ResidualBlock(top)]
        for i in reversed(range(ups)):
            layers.append(upsample_in_relu(width * 2 ** (i + 1), width * 2 ** i))
        layers += [nn.Conv2d(width, channels, 7, padding=3, padding_mode='reflect'), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, structure, code):
        return self.body(torch.cat([structure, code.expand(-1, -1, *structure.shape[-2:])], 1))


def _by_resolution(feats) -> list:
    """Feature levels ordered shallow (largest) to deep (smallest), whatever the backbone's order."""
    return sorted(feats, key=lambda f: -f.shape[-1])


@METHODS.register_module(name='dise')
class DISE(TargetAdaptation):

    def __init__(self, lambda_seg: float = 0.1, lambda_label_transfer: float = 1.0, lambda_adv: float = 2.0,
                 lambda_adv_aux: float = 2e-4, lambda_adv_main: float = 1e-3, lambda_rec_self: float = 0.5,
                 lambda_gan: float = 0.01, lambda_rec_translation: float = 0.05, translator_width: int = 16,
                 translator_optimizer: dict | None = None, image_disc_optimizer: dict | None = None,
                 image_disc_every: int = 5, **kwargs):
        super().__init__(**kwargs)
        self.aux_head = True
        self.lambda_seg, self.lambda_label_transfer = lambda_seg, lambda_label_transfer
        self.lambda_adv = {'aux': lambda_adv * lambda_adv_aux, 'main': lambda_adv * lambda_adv_main}
        self.lambda_rec_self, self.lambda_gan, self.lambda_rec_translation = lambda_rec_self, lambda_gan, lambda_rec_translation
        self.translator_width, self.image_disc_every = translator_width, image_disc_every
        self.translator_optimizer = translator_optimizer or dict(type='Adam', lr=1e-3, betas=(0.5, 0.999))
        self.image_disc_optimizer = image_disc_optimizer or dict(type='Adam', lr=1e-4, betas=(0.5, 0.999))

    def prepare(self, ctx):
        w, c, (h, width) = self.translator_width, ctx.source.channels, ctx.source.masks.shape[1:]
        training = self.net.training
        self.net.eval()   # the shape probe must not move BatchNorm's running statistics
        with torch.no_grad():
            structure = self.structure(self.net.model.extract_feat(torch.zeros(1, c, h, width, device=ctx.device)))
        self.net.train(training)
        self.texture = nn.ModuleDict({d: TextureEncoder(w, c) for d in ('source', 'target')}).to(ctx.device)
        self.decoder = StructureTextureDecoder(structure.shape[1], 4 * w, w, h // structure.shape[-2], c).to(ctx.device)
        self.image_discs = nn.ModuleDict({d: PatchDiscriminator(c, w) for d in ('source', 'target')}).to(ctx.device)
        self.perceptual = copy.deepcopy(self.net.model.backbone)
        self.perceptual.requires_grad_(False)
        self.extra_optimizers = {
            'translation': build_optimizer([*self.texture.parameters(), *self.decoder.parameters()], self.translator_optimizer),
            'image_disc': build_optimizer(self.image_discs.parameters(), self.image_disc_optimizer)}

    @staticmethod
    def structure(feats):
        return _by_resolution(feats)[-1]

    def perceptual_levels(self, images):
        self.perceptual.eval()
        return _by_resolution(self.perceptual(images))

    def discriminator_channels(self, num_classes):
        return {'aux': num_classes, 'main': num_classes}

    def outputs(self, images):
        model = self.net.model
        feats = model.extract_feat(images)
        up = lambda x: nn.functional.interpolate(x, images.shape[-2:], mode='bilinear', align_corners=False)  # noqa: E731
        return {'main': up(model.decode_head(feats)), 'aux': up(model.auxiliary_head(feats)), 'structure': self.structure(feats)}

    def seg_terms(self, main, aux, masks):
        return self.seg_loss(main, masks) + self.lambda_seg * self.seg_loss(aux, masks)

    def discriminator_inputs(self, out):
        return {k: two_class_probs(out[k]) for k in ('aux', 'main')}

    def adversarial_weights(self, iteration):
        return self.lambda_adv

    def source_loss(self, out, batch):
        self._source = out
        return {'seg': self.seg_terms(out['main'], out['aux'], batch['ys'])}

    def perceptual_distance(self, a, b):
        levels_a, levels_b = self.perceptual_levels(a), self.perceptual_levels(b)
        weights = LAYER_WEIGHTS[-len(levels_a):]
        return sum(w * (fa - fb).abs().mean() for w, fa, fb in zip(weights, levels_a, levels_b))

    def translation_distance(self, translated, structure_of, texture_of):
        """Keep the deep features of ``structure_of`` and the mean shallow features of ``texture_of``."""
        lt, ls, lx = self.perceptual_levels(translated), self.perceptual_levels(structure_of), self.perceptual_levels(texture_of)
        n = len(lt)
        structure = sum(w * (a - b).abs().mean() for w, a, b in zip((1 / 4, 1.0), lt[n - 2:], ls[n - 2:]))
        texture = sum((a.mean((2, 3)) - b.mean((2, 3))).abs().mean() for a, b in zip(lt[:n - 2], lx[:n - 2]))
        return structure + texture

    def target_loss(self, out, batch, iteration):
        src, xs, xt = self._source, batch['xs'], batch['xt']
        cs, ct = self.texture['source'](xs), self.texture['target'](xt)
        rec_s, rec_t = self.decoder(src['structure'], cs), self.decoder(out['structure'], ct)
        s2t, t2s = self.decoder(src['structure'], ct), self.decoder(out['structure'], cs)
        self._translations = (s2t.detach(), t2s.detach())
        losses = {
            'rec_self': self.lambda_rec_self * (self.perceptual_distance(rec_s, xs) + self.perceptual_distance(rec_t, xt)),
            'gan': self.lambda_gan * (lsgan_loss(self.image_discs['target'](s2t), True)
                                      + lsgan_loss(self.image_discs['source'](t2s), True)),
            'rec_translation': self.lambda_rec_translation * (self.translation_distance(s2t, xs, xt)
                                                              + self.translation_distance(t2s, xt, xs)),
        }
        if self.lambda_label_transfer:   # at weight 0 (the fine-tuning control) the net must not see the translations
            main, aux = self.net(s2t.detach(), with_aux=True)
            losses['label_transfer'] = self.lambda_label_transfer * self.seg_terms(main, aux, batch['ys'])
        return losses

    def train_step(self, batch, it, seg_opt, disc_opt):
        translation_opt, image_opt = self.extra_optimizers['translation'], self.extra_optimizers['image_disc']
        translation_opt.zero_grad(set_to_none=True)
        self.image_discs.requires_grad_(False)
        logs = super().train_step(batch, it, seg_opt, disc_opt)
        translation_opt.step()
        if it % self.image_disc_every == 0:
            self.image_discs.requires_grad_(True)
            s2t, t2s = self._translations
            with self.autocast():
                d_loss = 0.5 * (lsgan_loss(self.image_discs['target'](batch['xt']), True)
                                + lsgan_loss(self.image_discs['target'](s2t), False)
                                + lsgan_loss(self.image_discs['source'](batch['xs']), True)
                                + lsgan_loss(self.image_discs['source'](t2s), False))
            image_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            image_opt.step()
            logs['image_disc'] = d_loss.detach()
        return logs
