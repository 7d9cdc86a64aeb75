"""GLSS: Generative Latent Search for Segmentation (Pandey et al., ECCV 2020; seed 002 §3-4, seed 000).

Training never sees the target: the Source Only network S_psi (shared with the ``source_only``
method, and also the perceptual model P_psi) is trained on the source, then the edge-skip VAE
(``vae.EdgeSkipVAE``) is trained on the source with Algorithm 1 of seed 000:

    L_g = L_r + beta * L_p + KL   (encoder phi)      L_h = L_r + beta * L_p   (decoder theta)

with L_r = sum ||x - h(z)||^2, L_p = sum ||P(x) - P(h(z))||^2 on S_psi's perceptual layer
(DeepLabv3+: its last concatenation; UNet: its 6th layer), beta = 2 (UNet) or 3 (DeepLabv3+)
(seed 000 Eq. 3), RMSprop lr 1e-4 (Keras constants rho 0.9, eps 1e-7), batch 64. KL does not
depend on theta, so one backward pass of L_g gives the decoder exactly the gradient of L_h (tested).
At test time each target image's nearest clone is found by ``latent_search`` and S_psi's mask on
the clone is the target's mask.

``train_generative_model`` builds and trains the searched model in one overridable method (a GAN
variant replaces it); the VAE path also records diagnostics (``extra_results()['vae']``) on a
seeded ``vae_train.holdout`` part of the source kept out of training: held-out reconstruction MSE
vs the mean image's, active latent units, and the decoder's sensitivity to z; every step logs L_r,
L_p, beta*L_p and KL. Deviations (README): the init (``vae.EdgeSkipVAE``), the optional KL warm-up
``vae_train.kl_warmup`` (0: none, as the paper), the per-image starting z (``prior_draws``: from
(seed, image index), so it does not depend on the batching) and the optional search until
convergence (``latent_search.patience``).

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

from udabench.datasets.base import RowView
from udabench.engine import batch_indices, build_optimizer, iterations_for
from udabench.registry import METHODS

from .base import (BatchReader, FitContext, UDAMethod, cached_stages, check_target_fraction, source_network,
                   target_fraction_indices, to_tensor)
from .gan import source_frechet_distance
from .latent_search import latent_search, prior_draws
from .losses import class_probabilities
from .vae import EdgeSkipVAE, sobel_edges


def holdout_split(count: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices: a seeded ``fraction`` of ``count`` source images is kept out of
    the VAE's training for its diagnostics (at least one image when ``fraction`` > 0)."""
    if not 0 <= fraction < 1:
        raise ValueError(f'method.vae_train.holdout must be in [0, 1), got {fraction!r}')
    order = np.random.default_rng([seed, 7]).permutation(count)
    held = max(1, int(round(fraction * count))) if fraction > 0 else 0
    return np.sort(order[held:]), np.sort(order[:held])


@torch.no_grad()
def vae_diagnostics(vae: EdgeSkipVAE, heldout: RowView, mean_image: np.ndarray, seed: int, device: str,
                    batch_size: int = 64) -> dict:
    """Whether the VAE learned, on held-out source images: the per-pixel MSE of the reconstruction
    through the encoder mean beside that of the training set's mean image; the active latent units
    (variance over the images of mu_d above 0.01); and the decoder's sensitivity to z, the mean
    |h(z1, e) - h(z2, e)| for two prior draws with the images' own edges e."""
    if len(heldout) == 0:
        return {}
    generator = torch.Generator().manual_seed(seed)
    mean = to_tensor(mean_image, device)
    rec, base, change, mus = [], [], [], []
    for rows in heldout.batches(batch_size):
        x = to_tensor(rows, device)
        edges = sobel_edges(x)
        mu = vae.encode(x)[0]
        z1, z2 = (torch.randn(len(x), vae.latent, generator=generator).to(device) for _ in range(2))
        rec.append((vae.decode(mu, edges) - x).pow(2).flatten(1).mean(1))
        base.append((mean - x).pow(2).flatten(1).mean(1))
        change.append((vae.decode(z1, edges) - vae.decode(z2, edges)).abs().flatten(1).mean(1))
        mus.append(mu)
    rec, base = torch.cat(rec).mean().item(), torch.cat(base).mean().item()
    variance = torch.cat(mus).var(0) if len(heldout) > 1 else torch.zeros(vae.latent)
    return {'heldout_images': len(heldout), 'heldout_rec_mse': rec, 'heldout_mean_image_mse': base,
            'rec_to_mean_image': rec / max(base, 1e-12), 'active_units': int((variance > 0.01).sum()),
            'latent': vae.latent, 'z_sensitivity': torch.cat(change).mean().item()}


def images_digest(images: RowView) -> str:
    """Content hash of a model's training images (their bytes in order, read a batch at a time), part
    of its cache key (source, held-out split and, in the target-fraction study, the target images
    appended to them)."""
    digest = hashlib.sha1()
    for rows in images.batches():
        digest.update(np.ascontiguousarray(rows).tobytes())
    return digest.hexdigest()


def mean_image(images: RowView) -> np.ndarray:
    """The images' mean (C, H, W), read a batch at a time and summed image by image in float32 as
    numpy's ``mean(0)`` of the whole array sums them, so it equals that bit for bit."""
    total = np.zeros(images.shape[1:], np.float32)
    for rows in images.batches():
        for row in rows:
            np.add(total, row, out=total)
    return total / len(images)


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """(N,) KL(N(mu, sigma^2) || N(0, I)) summed over latent dimensions."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)


@METHODS.register_module(name='glss')
class GLSS(UDAMethod):
    tasks = ('skin', 'urban')

    def __init__(self, vae: dict, vae_train: dict, latent_search: dict, beta: dict,
                 perceptual: bool = True, vae_loss: dict | None = None, target_fraction: float = 0.0,
                 predict_batch_size: int = 256):
        super().__init__()
        self.vae_cfg, self.ls_cfg = dict(vae), dict(latent_search)
        self.vae_train = {**dict(holdout=0.1, kl_warmup=0.0), **vae_train}
        self.beta_by_net, self.perceptual = dict(beta), perceptual
        self.vae_loss = {**dict(reduction='sum', rec_terms=('mse',), rec_weight=1.0, kl_weight=1.0), **(vae_loss or {})}
        self.target_fraction = check_target_fraction(target_fraction, allow_zero=True)
        # Target-independent unless the target-fraction study feeds target images to the VAE.
        self.uses_target_images = target_fraction > 0
        self.predict_batch_size = predict_batch_size
        self.ls_seconds: list[float] = []
        self.ls_iterations: list[np.ndarray] = []
        self.diagnostics: dict = {}
        self.images_searched = 0
        self.progress = False
        self.sample_quality: dict = {}

    # ----------------------------------------------------------------------------- training
    def vae_objectives(self, x: torch.Tensor, vae: EdgeSkipVAE | None = None, kl_scale: float = 1.0) -> dict:
        """L_r, L_p, KL and the two objectives of Algorithm 1 for a batch ``x`` (``kl_scale``: KL warm-up factor)."""
        recon, mu, logvar = (t.float() for t in (vae or self.vae)(x))   # float32 also under bf16 autocast
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
        perc = (feature_distance(self.net.perceptual_features(x).float(), self.net.perceptual_features(recon).float())
                if self.perceptual else torch.zeros((), device=x.device))
        decoder_objective = rec + self.beta * perc
        return dict(rec=rec, perceptual=perc, kl=kl, decoder_objective=decoder_objective,
                    encoder_objective=decoder_objective + kl_scale * cfg['kl_weight'] * kl)

    def fit(self, ctx: FitContext) -> None:
        self.progress = ctx.progress
        self.use_context(ctx)
        self.net = source_network(ctx)
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.net.eval()
        self.beta = self.beta_by_net.get(ctx.net['name'], 0.0) if self.perceptual else 0.0
        source = ctx.source.normalised_images()
        train_idx, heldout_idx = holdout_split(len(source), self.vae_train['holdout'], ctx.seed)
        self.heldout_images, images = source.take(heldout_idx), source.take(train_idx)
        if self.target_fraction > 0:   # seed 000 §2.4: VAE trained on source + a fraction of target (in memory)
            images = RowView(np.concatenate([images[:], ctx.target_images[target_fraction_indices(
                len(ctx.target_images), self.target_fraction, ctx.seed)]]))
        self.images_searched = 0
        self.vae = self.train_generative_model(ctx, images)
        self.vae.eval()
        for p in self.vae.parameters():
            p.requires_grad_(False)
        self.sample_quality = source_frechet_distance(self.net, self.vae, ctx.source.normalised_images(), ctx.seed,
                                                      ctx.device)

    def train_generative_model(self, ctx: FitContext, images: RowView) -> torch.nn.Module:
        """Build and train (or load from the cache) the generative model searched at test time on
        ``images`` (normalised); here the edge-skip VAE with Algorithm 1, then its diagnostics."""
        torch.manual_seed(ctx.seed)
        vae = EdgeSkipVAE(image_size=tuple(images.shape[-2:]), channels=images.shape[1], **self.vae_cfg).to(ctx.device)
        train = self.vae_train
        enc_opt = build_optimizer(vae.encoder_parameters(), train['optimizer'])
        dec_opt = build_optimizer(vae.decoder_parameters(), train['optimizer'])
        num_iters = iterations_for(train['epochs'], len(images), train['batch_size'])
        warmup = train['kl_warmup'] * num_iters
        data = BatchReader({'x': images}, ctx.device)

        def step(it):
            x = data.batch(batch_indices(len(images), train['batch_size'], it, ctx.seed))['x']
            kl_scale = min(1.0, (it + 1) / warmup) if warmup > 0 else 1.0
            with self.autocast():
                losses = self.vae_objectives(x, vae, kl_scale)
            enc_opt.zero_grad(set_to_none=True)
            dec_opt.zero_grad(set_to_none=True)
            # phi gets grad L_g; theta gets grad L_g = grad L_h since KL is independent of theta.
            losses['encoder_objective'].backward()
            enc_opt.step()
            dec_opt.step()
            perceptual = losses['perceptual'].detach()
            return {'rec': losses['rec'].detach(), 'perceptual': perceptual, 'beta_perceptual': perceptual.double() * self.beta,
                    'kl': losses['kl'].detach(), 'kl_scale': kl_scale}

        stages = cached_stages(ctx, __name__, f'glss_vae_{ctx.net["name"]}', ctx.net, ctx.seg_recipe, self.vae_cfg,
                               self.vae_loss, train, self.beta, images_digest(images))
        vae.train()
        stages.run('vae', step, num_iters, {'vae': vae, 'encoder_opt': enc_opt, 'decoder_opt': dec_opt})
        vae.eval()
        self.diagnostics = vae_diagnostics(vae, self.heldout_images, mean_image(images), ctx.seed, ctx.device)
        self.diagnostics['holdout'] = train['holdout']
        return vae

    # ---------------------------------------------------------------------------- inference
    def nearest_clones(self, images: torch.Tensor, record_every: int | None = None):
        """(clones, snapshots): latent-search clones, or the VAE reconstruction when LS is off."""
        cfg = self.ls_cfg
        if not cfg.get('enabled', True):
            with torch.no_grad():
                return self.vae.decode(self.vae.encode(images)[0], sobel_edges(images)), {}
        started = time.time()
        n, restarts = len(images), cfg.get('restarts', 1)
        # z of image i (in prediction order) depends on (seed, i) only, not on the batch it falls in
        z0 = prior_draws(range(self.images_searched, self.images_searched + n), restarts, self.vae.latent,
                         cfg.get('seed', 0)).to(images.device) if cfg.get('init', 'prior') == 'prior' else None
        self.images_searched += n
        with torch.enable_grad():
            result = latent_search(self.vae, images, iterations=cfg['iterations'], loss=cfg['loss'], lr=cfg['lr'],
                                   betas=tuple(cfg['betas']), eps=cfg.get('eps', 1e-8), init=cfg.get('init', 'prior'),
                                   restarts=restarts, record_every=record_every, z0=z0,
                                   patience=cfg.get('patience'), tolerance=cfg.get('tolerance', 1e-3),
                                   progress=self.progress, autocast=self.autocast)
        self.ls_iterations.append(result.iterations.cpu().numpy())
        self.ls_seconds.append((time.time() - started) / len(images))
        return result.clones, result.snapshots

    @torch.no_grad()
    def _mask(self, clones: torch.Tensor) -> torch.Tensor:
        return class_probabilities(self.net(clones))

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self._mask(self.nearest_clones(images)[0])

    def predict_steps(self, images: torch.Tensor) -> dict:
        """``'final'`` plus, with ``latent_search.record_every``, ``'ls_<k>'`` masks every k iterations (Fig. 5)."""
        clones, snapshots = self.nearest_clones(images, self.ls_cfg.get('record_every'))
        out = {f'ls_{it:04d}': self._mask(c) for it, c in snapshots.items()}
        out['final'] = self._mask(clones)
        return out

    def extra_results(self) -> dict:
        out = {'vae': self.diagnostics} if self.diagnostics else {}
        if self.sample_quality:
            out['frechet_distance'] = self.sample_quality
        if self.ls_seconds:
            used = np.concatenate(self.ls_iterations)
            out['latent_search'] = {'seconds_per_image': float(np.mean(self.ls_seconds)),
                                    'iterations': self.ls_cfg['iterations'], 'patience': self.ls_cfg.get('patience'),
                                    'iterations_used': {'mean': float(used.mean()), 'max': int(used.max())},
                                    'batch_size': self.predict_batch_size}
        return out
