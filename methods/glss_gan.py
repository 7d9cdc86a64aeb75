"""GLSS with a GAN generator in place of the VAE decoder (seed 000 §2.5, supplement Table 2).

Everything but the generative model is GLSS's (``glss.GLSS``): the Source Only network S_psi, the
latent search (z from the prior N(0, I), the same 1 - SSIM objective, optimiser and iterations) and
the mask of the nearest clone. The generative model is ``gan.DCGANGenerator`` trained on the source
with ``gan.train_gan`` (cached per source set, seed and GAN config, so one training serves both
networks and both targets); it has no encoder and no edge skip, so the latent search cannot start
from an encoding and ``latent_search.enabled=False`` (the reconstruction) does not exist here.
The supplement used BigGAN (too large for a CPU) on COMPAQ; see ``gan.py`` for the recipe.
"""
from __future__ import annotations

import torch

from udabench.datasets.base import RowView
from udabench.registry import METHODS

from .base import FitContext, cached_stages
from .gan import train_gan
from .glss import GLSS, images_digest


@METHODS.register_module(name='glss_gan')
class GLSSGAN(GLSS):
    tasks = ('skin',)      # the DCGAN is square (gan._steps): not on the urban task's 2:1 images yet

    def __init__(self, gan: dict, gan_train: dict, latent_search: dict, **glss_options):
        if not latent_search.get('enabled', True) or latent_search.get('init', 'prior') != 'prior':
            raise ValueError('method.latent_search: glss_gan has no encoder, so the search starts from the prior '
                             f'(enabled=True, init=prior); got {latent_search}')
        super().__init__(vae={}, vae_train={}, latent_search=latent_search, beta={}, perceptual=False, **glss_options)
        self.gan_cfg, self.gan_train = dict(gan), dict(gan_train)

    def train_generative_model(self, ctx: FitContext, images: RowView) -> torch.nn.Module:
        stages = cached_stages(ctx, __name__, 'glss_gan', self.gan_cfg, self.gan_train, images_digest(images))
        return train_gan(images, self.gan_cfg, self.gan_train, stages, ctx.seed, ctx.device, ctx.precision)
