"""AdaptSegNet (Tsai et al., CVPR 2018): multi-level adversarial learning in the output space.

An auxiliary classifier on a lower stage and the main classifier each get a discriminator on
their soft-maxed outputs (binary logits as 2-class probabilities). Loss (official code):
seg(main) + lambda_seg * seg(aux) + lambda_adv_target1 * adv(aux) + lambda_adv_target2 * adv(main),
with lambda_seg 0.1, lambda_adv_target1 2e-4 and lambda_adv_target2 1e-3 by default; seed 000 §2.2
grid-searches the two adversarial weights (``benchmarks/configs/methods/adaptsegnet.py``). Poly horizon
250k iterations, stopped at 150k (``horizon_ratio``).
"""
from __future__ import annotations

from udabench.registry import METHODS

from .adaptation import TargetAdaptation
from .discriminator import two_class_probs


@METHODS.register_module(name='adaptsegnet')
class AdaptSegNet(TargetAdaptation):
    horizon_ratio = 250 / 150

    def __init__(self, lambda_seg: float = 0.1, lambda_adv_target1: float = 2e-4,
                 lambda_adv_target2: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.aux_head = True
        self.lambda_seg, self.lambda_adv = lambda_seg, {'aux': lambda_adv_target1, 'main': lambda_adv_target2}

    def discriminator_channels(self, num_classes):
        return {'aux': num_classes, 'main': num_classes}

    def outputs(self, images):
        main, aux = self.net(images, with_aux=True)
        return {'main': main, 'aux': aux}

    def source_loss(self, out, batch):
        return {'seg': self.seg_loss(out['main'], batch['ys']), 'seg_aux': self.lambda_seg * self.seg_loss(out['aux'], batch['ys'])}

    def discriminator_inputs(self, out):
        return {k: two_class_probs(out[k]) for k in ('aux', 'main')}

    def adversarial_weights(self, iteration):
        return self.lambda_adv
