"""Depth distribution (Wu & Liu, NeurIPS 2022; seed 004; official code depdis/Depth_Distribution).

Stage 1, multi-task adversarial training. Two heads on the features the classifier reads (ResNet
layer4 in the original; ``networks.regression_convs``, their output's channel mean): inverse depth
and depth-distribution density. For each class the source's pixels (x, y, inverse depth) are
modelled by a Gaussian mixture (diagonal, 5 components, as the official per-class parameters); a
pixel's density target is T(p_c(x, y, z)), T(p) = 1 - exp(-s p), c its predicted class. Source:
z the true inverse depth, and 0 where the prediction is wrong (the official source maps are made
per true class and read at the predicted one); target: z the predicted inverse depth (detached),
0 where it is not positive. Losses (official config): source 1.0 seg + 0.005 berHu(depth) + 0.01
berHu(density) ("balance"); target 0.05 berHu(density) + 0.05 adversarial, the discriminator
(AdvEnt's) seeing the weighted self-information x the predicted density, its losses not halved,
Adam 1e-3 (0.9, 0.99); SGD 2.5e-4 poly 0.9 over the 90k iterations trained, every parameter in
one group (the official optimiser: no 10x head group).
Stage 2, self-training on the target training images only (official 30k iterations after 90k:
``self_training_iters`` = ``stop_iters`` / 3 by default; the lr restarts stage 1's poly from
iteration 0 over its horizon, as the official script), cross-entropy to pseudo-labels: the
stage-1 argmax where its confidence is >= 0.9, kept only in connected regions (8-neighbours) of
one class at least thres_i pixels large, thres_i = N_base0 + (N_i - N_min) / (N_max - N_min) *
N_base1, N_i each class's mean region size on the source labels (the spatial aggregation
prior, seed 004 Algorithm 1).

The official GMM fitting, density evaluation and region search ship only as compiled binaries:
written here from the paper. Choices, each a setting: EM on up to 20,000 source pixels per class;
x and y as fractions of the width and height (the official: feature-map pixels); s such that the
median source pixel's density maps to 0.95 (the official multiplies by 1e6 for SYNTHIA's units,
and its source maps are raw densities while its target maps are (1 - exp(-1e6 p)) x 255: one
transform for both here); N_base0 = 50 and N_base1 = 4,950 pixels at 1280 x 760 (the range of the
official thresholds, 50 to 5,000), scaled to the target's image size. Inverse depth is 1 / metres.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import ndimage

from udabench.engine import batch_indices, build_optimizer
from udabench.registry import METHODS

from .adaptation import DepthAwareAdaptation
from .base import IGNORE, BatchReader, FitContext, class_map, resize_classes, segmentation_targets
from .discriminator import predicted_classes
from .losses import berhu_loss
from .networks import regression_convs

#: The official thresholds span 50 to 5,000 pixels at 1280 x 760 (gene_UDA.py).
OFFICIAL_PIXELS = 1280 * 760


def fit_diagonal_gmm(points: np.ndarray, components: int, seed: int, iterations: int = 100) -> tuple:
    """EM for a Gaussian mixture with diagonal covariances: (weights (K,), means (K, D), variances (K, D))."""
    points = np.asarray(points, np.float64)
    rng = np.random.default_rng(seed)
    k = min(components, len(points))
    means = points[rng.choice(len(points), k, replace=False)]
    floor = 1e-6 * points.var(0).mean() + 1e-12
    variances = np.tile(points.var(0) + floor, (k, 1))
    weights = np.full(k, 1.0 / k)
    for _ in range(iterations):
        log_p = np.log(weights) + gaussian_log_density(points, means, variances)       # (n, k)
        resp = np.exp(log_p - log_p.max(1, keepdims=True))
        resp /= resp.sum(1, keepdims=True)
        mass = resp.sum(0) + 1e-12
        weights = mass / mass.sum()
        means = resp.T @ points / mass[:, None]
        variances = resp.T @ points ** 2 / mass[:, None] - means ** 2 + floor
    return weights, means, variances


def gaussian_log_density(points: np.ndarray, means: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """log N(point | mean_k, diag variance_k) for every point and component: (n, K)."""
    diff = points[:, None, :] - means[None]
    return -0.5 * ((diff ** 2 / variances[None]).sum(-1) + np.log(variances).sum(-1)[None]
                   + points.shape[1] * math.log(2 * math.pi))


def pixel_coordinates(shape, device='cpu') -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) of each pixel centre of an (h, w) map as fractions of the width and height."""
    h, w = shape
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
    return xs[None, :].expand(h, w), ys[:, None].expand(h, w)


def mean_region_sizes(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Per class the mean size (pixels) of its 8-connected regions over (N, H, W) labels; NaN if absent."""
    sizes = [[] for _ in range(num_classes)]
    eight = np.ones((3, 3), bool)
    for image in labels:
        for cls in range(num_classes):
            regions, count = ndimage.label(image == cls, structure=eight)
            if count:
                sizes[cls].extend(np.bincount(regions.ravel())[1:].tolist())
    return np.array([np.mean(s) if s else np.nan for s in sizes])


def region_thresholds(region_sizes: np.ndarray, image_pixels: int, base0: float = 50.0,
                      base1: float = 4950.0) -> np.ndarray:
    """thres_i = N_base0 + (N_i - N_min) / (N_max - N_min) * N_base1 (seed 004), the bases given at
    1280 x 760 and scaled to ``image_pixels``; a class absent from the source gets the largest."""
    scale = image_pixels / OFFICIAL_PIXELS
    present = region_sizes[~np.isnan(region_sizes)]
    span = present.max() - present.min() if len(present) else 0.0
    ratio = (region_sizes - present.min()) / span if span > 0 else np.zeros_like(region_sizes)
    return scale * (base0 + np.where(np.isnan(region_sizes), 1.0, ratio) * base1)


def spatial_prior_labels(probs: np.ndarray, thresholds: np.ndarray, confidence: float = 0.9) -> np.ndarray:
    """Seed 004 Algorithm 1: the argmax where its confidence is >= ``confidence`` and its 8-connected
    region of confident pixels of that class has at least ``thresholds[class]`` pixels; -1 elsewhere.
    ``probs``: (N, H, W) skin probabilities or (N, C, H, W) class probabilities."""
    if probs.ndim != 4:
        probs = np.stack([1 - probs, probs], 1)
    pred, conf = probs.argmax(1), probs.max(1)
    labels = np.full(pred.shape, -1.0, np.float32)
    eight = np.ones((3, 3), bool)
    for n in range(len(pred)):
        for cls in np.unique(pred[n]):
            regions, count = ndimage.label((pred[n] == cls) & (conf[n] >= confidence), structure=eight)
            if count:
                sizes = np.bincount(regions.ravel())
                big = np.flatnonzero(sizes >= thresholds[cls])
                labels[n][np.isin(regions, big[big > 0])] = cls
    return labels


class ClassDepthDistributions(nn.Module):
    """Per class a diagonal GMM over (x, y, inverse depth) of the source's pixels, and the density
    transform T(p) = 1 - exp(-scale p) (buffers: checkpointed with the method)."""

    def __init__(self, num_classes: int, components: int):
        super().__init__()
        self.register_buffer('weights', torch.zeros(num_classes, components))   # 0: class absent
        self.register_buffer('means', torch.zeros(num_classes, components, 3))
        self.register_buffer('variances', torch.ones(num_classes, components, 3))
        self.register_buffer('scale', torch.ones(()))

    def fit(self, masks: np.ndarray, inverse_depth: np.ndarray, seed: int, max_points: int = 20000,
            median_target: float = 0.95) -> None:
        rng = np.random.default_rng(seed)
        xs, ys = (np.broadcast_to(c.numpy(), masks.shape) for c in pixel_coordinates(masks.shape[1:]))
        log_densities = []
        for cls in range(self.weights.shape[0]):
            where = np.flatnonzero((masks == cls).ravel())
            if len(where) == 0:
                continue
            where = rng.choice(where, min(max_points, len(where)), replace=False)
            points = np.stack([xs.ravel()[where], ys.ravel()[where], inverse_depth.ravel()[where]], 1)
            weights, means, variances = fit_diagonal_gmm(points, self.weights.shape[1], seed + cls)
            k = len(weights)
            self.weights[cls, :k] = torch.as_tensor(weights)
            self.means[cls, :k] = torch.as_tensor(means)
            self.variances[cls, :k] = torch.as_tensor(variances)
            log_densities.append(self.log_density(torch.as_tensor(points, dtype=torch.float32),
                                                  torch.full((len(points),), cls)))
        median = torch.cat(log_densities).exp().median() if log_densities else torch.ones(())
        self.scale.fill_(-math.log(1 - median_target) / float(median.clamp_min(1e-30)))

    def log_density(self, points: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """log p_c(x, y, z) for (M, 3) points of (M,) classes (-inf for a class the source lacks)."""
        means, variances = self.means[classes], self.variances[classes]                 # (M, K, 3)
        log_n = -0.5 * (((points[:, None] - means) ** 2 / variances).sum(-1) + variances.log().sum(-1)
                        + 3 * math.log(2 * math.pi))
        return torch.logsumexp(self.weights[classes].log() + log_n, -1)

    def target(self, classes: torch.Tensor, inverse_depth: torch.Tensor) -> torch.Tensor:
        """(N, 1, h, w) T(p_class(x, y, z)) for (N, h, w) classes (IGNORE: 0) and inverse depth (<= 0: 0)."""
        xs, ys = pixel_coordinates(classes.shape[-2:], classes.device)
        points = torch.stack([xs.expand_as(inverse_depth), ys.expand_as(inverse_depth), inverse_depth], -1)
        valid = (classes != IGNORE) & (inverse_depth > 0)
        density = torch.zeros_like(inverse_depth)
        density[valid] = self.log_density(points[valid], classes[valid]).exp()
        return (1 - torch.exp(-self.scale * density))[:, None]


@METHODS.register_module(name='depth_distribution')
class DepthDistribution(DepthAwareAdaptation):
    depth_cue = 'density_up'

    def __init__(self, lambda_seg: float = 1.0, lambda_depth: float = 0.005, lambda_balance: float = 0.01,
                 lambda_target_balance: float = 0.05, lambda_adv: float = 0.05, components: int = 5,
                 confidence: float = 0.9, region_base0: float = 50.0, region_base1: float = 4950.0,
                 self_training_iters: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if components < 1:
            raise ValueError(f'method.components (mixture components per class) must be at least 1, got {components}')
        if not 0.0 < confidence <= 1.0:
            raise ValueError(f'method.confidence (pseudo-label threshold) must be in (0, 1], got {confidence}')
        if region_base0 < 0 or region_base1 < 0:
            raise ValueError(f'method.region_base0 and method.region_base1 (region sizes in pixels) must be >= 0, '
                             f'got {region_base0} and {region_base1}')
        if self_training_iters is not None and self_training_iters < 0:
            raise ValueError(f'method.self_training_iters must be >= 0 (or None: stop_iters / 3), got {self_training_iters}')
        self.lambda_seg, self.lambda_depth, self.lambda_balance = lambda_seg, lambda_depth, lambda_balance
        self.lambda_target_balance, self.lambda_adv, self.components = lambda_target_balance, lambda_adv, components
        self.confidence, self.region_base0, self.region_base1 = confidence, region_base0, region_base1
        self.self_training_iters = round(self.stop_iters / 3) if self_training_iters is None else self_training_iters
        self.pseudo_label_summary: dict = {}

    def prepare(self, ctx):
        source = ctx.source
        if source.depth is None:
            raise ValueError(f'depth_distribution needs source depth, but the source set {source.name} '
                             f'({source.description}) has none (see datasets/README.md)')
        head = self.net.model.decode_head
        if not isinstance(head.in_index, int):
            raise ValueError(f'depth_distribution needs a decode head reading one feature map; '
                             f'{ctx.net["name"]} reads {head.in_index}')
        self.depth_head = regression_convs(head.in_channels).to(ctx.device)
        self.density_head = regression_convs(head.in_channels).to(ctx.device)
        self.classes = max(self.net.num_classes, 2)
        self.distributions = ClassDepthDistributions(self.classes, self.components).to(ctx.device)
        self.distributions.fit(source.masks, 1.0 / np.maximum(source.depth, 1e-3), ctx.seed)

    def head_modules(self):
        return []                                  # the official optimiser: one group, every part at the base lr

    def outputs(self, images):
        model = self.net.model
        feats = list(model.extract_feat(images))
        features = feats[model.decode_head.in_index]
        size = images.shape[-2:]
        depth = self.depth_head(features).mean(1, keepdim=True)
        density = self.density_head(features).mean(1, keepdim=True)
        logits = F.interpolate(model.decode_head(feats), size, mode='bilinear', align_corners=False)
        return {'main': logits, 'depth': depth, 'density': density,
                'density_up': F.interpolate(density, size, mode='bilinear', align_corners=False)}

    def source_loss(self, out, batch):
        size = out['density'].shape[-2:]
        inverse_depth = 1.0 / batch['ds'].clamp_min(1e-3)
        truth = resize_classes(class_map(batch['ys']), size)
        predicted = resize_classes(predicted_classes(out['main']), size)
        right = torch.where(predicted == truth, truth, torch.full_like(truth, IGNORE))
        density = self.distributions.target(right, F.interpolate(inverse_depth, size, mode='nearest')[:, 0])
        depth_up = F.interpolate(out['depth'], batch['ds'].shape[-2:], mode='bilinear', align_corners=False)
        return {'seg': self.lambda_seg * self.seg_loss(out['main'], batch['ys']),
                'depth': self.lambda_depth * berhu_loss(depth_up, inverse_depth),
                'balance': self.lambda_balance * berhu_loss(out['density'], density)}

    def target_loss(self, out, batch, iteration):
        size = out['density'].shape[-2:]
        predicted = resize_classes(predicted_classes(out['main']), size)
        density = self.distributions.target(predicted, out['depth'].detach()[:, 0])
        return {'target_balance': self.lambda_target_balance * berhu_loss(out['density'], density)}

    def fit(self, ctx: FitContext) -> None:
        self.build(ctx)
        self.adapt(ctx, ctx.source.normalised_images(), 'adaptation')
        self.self_train(ctx, self.refined_pseudo_labels(ctx), 'self_training')

    def refined_pseudo_labels(self, ctx: FitContext) -> np.ndarray:
        """Stage 2's labels on the target images the stages train on (``spatial_prior_labels``)."""
        keep = self.target_training_indices(ctx)
        images = ctx.target_images
        thresholds = region_thresholds(mean_region_sizes(ctx.source.masks, self.classes), int(np.prod(images.shape[2:])),
                                       self.region_base0, self.region_base1)
        labels = np.full((len(images), *images.shape[2:]), -1.0, np.float32)
        labels[keep] = np.concatenate([spatial_prior_labels(probs, thresholds, self.confidence)      # per image
                                       for probs in self.predictions(images.take(keep), ctx.device)])
        self.pseudo_label_summary = dict(kept_fraction=float((labels[keep] >= 0).mean()),
                                         region_thresholds=[round(float(t), 3) for t in thresholds])
        return labels

    def self_train(self, ctx: FitContext, labels: np.ndarray, stage: str) -> None:
        """Target-only cross-entropy to ``labels`` (-1 ignored) for ``self_training_iters`` steps."""
        keep = self.target_training_indices(ctx)
        targets = BatchReader({'xt': ctx.target_images.take(keep),
                                'yt': segmentation_targets(labels, self.net.num_classes).take(keep)}, ctx.device)
        seg_opt = build_optimizer(self.segmentation_param_groups(), self.optimizer)
        base_lrs = [g['lr'] for g in seg_opt.param_groups]

        def step(it):
            for group, base in zip(seg_opt.param_groups, base_lrs):
                group['lr'] = base * self.lr_factor(it)
            batch = targets.batch(batch_indices(len(targets), self.batch_size, it, ctx.seed + 2))
            with self.autocast():
                loss = self.seg_loss(self.net(batch['xt']), batch['yt'].clamp_min(0), valid=(batch['yt'] >= 0).float())
            seg_opt.zero_grad(set_to_none=True)
            loss.backward()
            seg_opt.step()
            return {'self_training': loss.detach()}

        self.train()
        ctx.stages.run(stage, step, self.self_training_iters, {'method': self, 'seg_opt': seg_opt})
        self.eval()

    def extra_results(self) -> dict:
        return {**super().extra_results(), 'pseudo_labels': self.pseudo_label_summary}
