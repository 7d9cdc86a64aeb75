"""AdvEnt and MinEnt (Vu et al., CVPR 2019).

MinEnt adds lambda_ent * the mean normalised entropy of the target predictions (Eq. 4); AdvEnt
lets a discriminator see the weighted self-information maps -p log2 p / log2 C (Eq. 3) and adds
lambda_adv * its adversarial loss (Eq. 5). Seed 000 §2.2: lambda_adv = lambda_ent = 0.001. As the
official code, both are multi-level by default: an auxiliary classifier with seg weight 0.1 and
adversarial / entropy weight 2e-4 (``multi_level=False`` keeps the main output only). Poly horizon
250k iterations, stopped at 120k (``horizon_ratio``).
"""
from __future__ import annotations

from udabench.registry import METHODS

from .adaptation import TargetAdaptation
from .discriminator import entropy_loss, two_class_probs, weighted_self_information


class _EntropyAdaptation(TargetAdaptation):
    horizon_ratio = 250 / 120

    def __init__(self, multi_level: bool = True, lambda_seg_aux: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.aux_head = multi_level
        self.lambda_seg_aux = lambda_seg_aux

    def levels(self):
        return ('main', 'aux') if self.aux_head else ('main',)

    def outputs(self, images):
        if not self.aux_head:
            return {'main': self.net(images)}
        main, aux = self.net(images, with_aux=True)
        return {'main': main, 'aux': aux}

    def source_loss(self, out, batch):
        losses = {'seg': self.seg_loss(out['main'], batch['ys'])}
        if self.aux_head:
            losses['seg_aux'] = self.lambda_seg_aux * self.seg_loss(out['aux'], batch['ys'])
        return losses


@METHODS.register_module(name='advent')
class AdvEnt(_EntropyAdaptation):

    def __init__(self, lambda_adv: float = 1e-3, lambda_adv_aux: float = 2e-4, **kwargs):
        super().__init__(**kwargs)
        self.lambda_adv = {'main': lambda_adv, 'aux': lambda_adv_aux}

    def discriminator_channels(self, num_classes):
        return {k: num_classes for k in self.levels()}

    def discriminator_inputs(self, out):
        return {k: weighted_self_information(two_class_probs(out[k])) for k in self.levels()}

    def adversarial_weights(self, iteration):
        return self.lambda_adv


@METHODS.register_module(name='minent')
class MinEnt(_EntropyAdaptation):

    def __init__(self, lambda_ent: float = 1e-3, lambda_ent_aux: float = 2e-4, **kwargs):
        super().__init__(**kwargs)
        self.lambda_ent = {'main': lambda_ent, 'aux': lambda_ent_aux}

    def target_loss(self, out, batch, iteration):
        return {f'ent_{k}': self.lambda_ent[k] * entropy_loss(two_class_probs(out[k])) for k in self.levels()}
