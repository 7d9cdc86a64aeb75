"""GLSS: Generative Latent Search for Segmentation (Pandey et al., ECCV 2020; seed 002 §3-4, seed 000).

Training never sees the target: the Source Only network S_psi (shared with the ``source_only``
method, and also the perceptual model P_psi) is trained on the source, then the edge-skip VAE
(``vae.EdgeSkipVAE``) is trained on the source with Algorithm 1 of seed 000:

    L_g = L_r + beta * L_p + KL   (encoder phi)      L_h = L_r + beta * L_p   (decoder theta)

with L_r = sum ||x - h(z)||^2, L_p = sum ||P(x) - P(h(z))||^2 on S_psi's perceptual layer
(DeepLabv3+: its last concatenation; UNet: its 6th layer), beta = 2 (UNet) or 3 (DeepLabv3+)
(seed 000 Eq. 3), RMSprop lr 1e-4, batch 64. KL does not depend on theta, so one backward pass of
L_g gives the decoder exactly the gradient of L_h (tested). At test time each target image's
nearest clone is found by ``latent_search`` and S_psi's mask on the clone is the target's mask.

Options for Table 4: ``vae.edge_skip``, ``perceptual`` (L_p on/off) and ``latent_search.enabled``
(off: the mask of the VAE's reconstruction of the target through the encoder mean).
``glss_official_code`` reproduces the official code's choices instead of the paper's.
``train_generative_model`` builds and trains the generative model (``glss_gan`` overrides it with a
GAN, seed 000 §2.5); the result's ``frechet_distance`` scores its prior samples against the source
images (``gan.source_frechet_distance``).
"""
from __future__ import annotations

import hashlib
import time

import numpy as np
import torch

from udabench.engine import batch_indices, build_optimizer, iterations_for
from udabench.registry import METHODS

from .base import (FitContext, UDAMethod, cached_stages, check_target_fraction, source_network,
                   target_fraction_indices, to_tensor)
from .gan import source_frechet_distance
from .latent_search import latent_search
from .vae import EdgeSkipVAE, sobel_edges


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """(N,) KL(N(mu, sigma^2) || N(0, I)) summed over latent dimensions."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)


@METHODS.register_module(name='glss')
class GLSS(UDAMethod):

    def __init__(self, vae: dict, vae_train: dict, latent_search: dict, beta: dict,
                 perceptual: bool = True, vae_loss: dict | None = None, target_fraction: float = 0.0,
                 predict_batch_size: int = 256):
        super().__init__()
        self.vae_cfg, self.vae_train, self.ls_cfg = dict(vae), dict(vae_train), dict(latent_search)
        self.beta_by_net, self.perceptual = dict(beta), perceptual
        self.vae_loss = {**dict(reduction='sum', rec_terms=('mse',), rec_weight=1.0, kl_weight=1.0), **(vae_loss or {})}
        self.target_fraction = check_target_fraction(target_fraction, allow_zero=True)
        # Target-independent unless the target-fraction study feeds target images to the VAE.
        self.uses_target_images = target_fraction > 0
        self.predict_batch_size = predict_batch_size
        self.ls_seconds: list[float] = []
        self.progress = False
        self.sample_quality: dict = {}

    # ----------------------------------------------------------------------------- training
    def vae_objectives(self, x: torch.Tensor) -> dict:
        """L_r, L_p, KL and the two objectives of Algorithm 1 for a batch ``x``."""
        recon, mu, logvar = self.vae(x)
        cfg = self.vae_loss
        if cfg['reduction'] == 'sum':      # Algorithm 1: squared norms per image, batch mean
            terms = {'mse': (x - recon).pow(2).flatten(1).sum(1).mean(),
                     'mae': (x - recon).abs().flatten(1).sum(1).mean()}
            kl = kl_to_standard_normal(mu, logvar).mean()
            feature_distance = lambda a, b: (a - b).pow(2).flatten(1).sum(1).mean()  # noqa: E731
        else:                              # the official code: means over every element
            terms = {'mse': (x - recon).pow(2).mean(), 'mae': (x - recon).abs().mean()}
            kl = kl_to_standard_normal(mu, logvar).mean() / mu.shape[1]
            feature_distance = lambda a, b: (a - b).pow(2).mean()  # noqa: E731
        rec = cfg['rec_weight'] * sum(terms[t] for t in cfg['rec_terms'])
        perc = (feature_distance(self.net.perceptual_features(x), self.net.perceptual_features(recon))
                if self.perceptual else torch.zeros((), device=x.device))
        decoder_objective = rec + self.beta * perc
        return dict(rec=rec, perceptual=perc, kl=kl, decoder_objective=decoder_objective,
                    encoder_objective=decoder_objective + cfg['kl_weight'] * kl)

    def fit(self, ctx: FitContext) -> None:
        self.progress = ctx.progress
        self.net = source_network(ctx)
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.net.eval()
        self.beta = self.beta_by_net.get(ctx.net['name'], 0.0) if self.perceptual else 0.0
        images = ctx.source.normalised_images()
        if self.target_fraction > 0:   # seed 000 §2.4: VAE trained on source + a fraction of target
            target_part = ctx.target_images[target_fraction_indices(len(ctx.target_images), self.target_fraction,
                                                                    ctx.seed)]
            images = np.concatenate([images, target_part])
        self.vae = self.train_generative_model(ctx, images)
        self.vae.eval()
        for p in self.vae.parameters():
            p.requires_grad_(False)
        self.sample_quality = source_frechet_distance(self.net, self.vae, ctx.source.normalised_images(), ctx.seed,
                                                      ctx.device)

    def target_key(self, ctx: FitContext, images: np.ndarray) -> tuple:
        """Cache-key part for the target images appended to the source ones (target-fraction study):
        a model trained on them depends on the target too, not only on the source set."""
        if self.target_fraction == 0:
            return ()
        return (hashlib.sha1(np.ascontiguousarray(images[len(ctx.source.images):]).tobytes()).hexdigest(),)

    def train_generative_model(self, ctx: FitContext, images: np.ndarray) -> torch.nn.Module:
        """The edge-skip VAE trained on ``images`` (N, 1, H, W) in [-1, 1] with Algorithm 1 (cached)."""
        torch.manual_seed(ctx.seed)
        self.vae = EdgeSkipVAE(image_size=images.shape[-1], **self.vae_cfg).to(ctx.device)
        train = self.vae_train
        enc_opt = build_optimizer(self.vae.encoder_parameters(), train['optimizer'])
        dec_opt = build_optimizer(self.vae.decoder_parameters(), train['optimizer'])
        num_iters = iterations_for(train['epochs'], len(images), train['batch_size'])

        def step(it):
            x = to_tensor(images[batch_indices(len(images), train['batch_size'], it, ctx.seed)], ctx.device)
            losses = self.vae_objectives(x)
            enc_opt.zero_grad(set_to_none=True)
            dec_opt.zero_grad(set_to_none=True)
            # phi gets grad L_g; theta gets grad L_g = grad L_h since KL is independent of theta.
            losses['encoder_objective'].backward()
            enc_opt.step()
            dec_opt.step()
            return {k: v.item() for k, v in losses.items() if k in ('rec', 'perceptual', 'kl')}

        stages = cached_stages(ctx, f'glss_vae_{ctx.net["name"]}', ctx.net, ctx.seg_recipe, self.vae_cfg,
                               self.vae_loss, train, self.beta, self.target_fraction, *self.target_key(ctx, images))
        self.vae.train()
        stages.run('vae', step, num_iters, {'vae': self.vae, 'encoder_opt': enc_opt, 'decoder_opt': dec_opt})
        return self.vae

    # ---------------------------------------------------------------------------- inference
    def nearest_clones(self, images: torch.Tensor, record_every: int | None = None):
        """(clones, snapshots): latent-search clones, or the VAE reconstruction when LS is off."""
        cfg = self.ls_cfg
        if not cfg.get('enabled', True):
            with torch.no_grad():
                return self.vae.decode(self.vae.encode(images)[0], sobel_edges(images)), {}
        started = time.time()
        generator = torch.Generator().manual_seed(cfg.get('seed', 0))
        with torch.enable_grad():
            result = latent_search(self.vae, images, iterations=cfg['iterations'], loss=cfg['loss'], lr=cfg['lr'],
                                   betas=tuple(cfg['betas']), eps=cfg.get('eps', 1e-8), init=cfg.get('init', 'prior'),
                                   restarts=cfg.get('restarts', 1), record_every=record_every, generator=generator,
                                   progress=self.progress)
        self.ls_seconds.append((time.time() - started) / len(images))
        return result.clones, result.snapshots

    @torch.no_grad()
    def _mask(self, clones: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(clones))[:, 0]

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self._mask(self.nearest_clones(images)[0])

    def predict_steps(self, images: torch.Tensor) -> dict:
        """``'final'`` plus, with ``latent_search.record_every``, ``'ls_<k>'`` masks every k iterations (Fig. 5)."""
        clones, snapshots = self.nearest_clones(images, self.ls_cfg.get('record_every'))
        out = {f'ls_{it:04d}': self._mask(c) for it, c in snapshots.items()}
        out['final'] = self._mask(clones)
        return out

    def extra_results(self) -> dict:
        out = {'frechet_distance': self.sample_quality} if self.sample_quality else {}
        if not self.ls_seconds:
            return out
        return {**out, 'latent_search': {'seconds_per_image': float(np.mean(self.ls_seconds)),
                                  'iterations': self.ls_cfg['iterations'], 'batch_size': self.predict_batch_size}}
