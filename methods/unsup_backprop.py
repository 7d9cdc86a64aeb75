"""Unsupervised segmentation by backpropagation (Kanezaki, ICASSP 2018; Kim, Kanezaki and Tanaka,
TIP 2020; seed 001 §2.2; official code kanezaki/pytorch-unsupervised-segmentation-tip), scored as a
label-free refinement of Source Only.

Per target image, a small CNN f is trained from scratch on that image alone: ``convs`` blocks of
3x3 conv -> ReLU -> BatchNorm, then a 1x1 conv -> BatchNorm, ``channels`` (100) response maps, on the
image mapped to [0, 1]. Its labels are its own argmax c_n = argmax f(x)_n, and it minimises (TIP 2020
§III, the feature-similarity and spatial-continuity losses with the official code's weights 1 and 1)

    L = w_sim * CE(f(x), c) + w_con * (mean |f(x)[i+1, j] - f(x)[i, j]| + mean |f(x)[i, j+1] - f(x)[i, j]|)

with SGD lr 0.1, momentum 0.9, until the argmax before a step holds at most ``min_labels`` (3)
clusters, or for ``max_iters`` (1,000) steps; the clusters are the argmax of one more forward pass.
BatchNorm uses the image's own statistics throughout (the official code stays in train mode).

It yields clusters, not classes: each cluster takes the class that the Source Only network (trained
on the source, as ``source_only``) predicts for most of its pixels (skin: probability > 0.5). No
target label is used; the result is Source Only's prediction made piecewise constant over the
image's own clusters, and the run's ``trace.source_only`` scores Source Only beside it.

The images of a prediction batch train at once, as one network of grouped convolutions (image i's
net is group i, its BatchNorm channels its own), which is the same as training them one by one:
no parameter is shared and SGD updates each with its own gradient. Each image's initial weights
(PyTorch's default init) are drawn from (seed, a CRC of the image's bytes), so they do not depend
on the batching. Deviations (README): the 2018 variant's superpixel refinement of the labels (SLIC)
is not built (scikit-image is not installed here), so this is the 2020 continuity-loss variant; the
``cpu`` profile uses 32 channels and at most 100 iterations (speed).
"""
from __future__ import annotations

import math
import time
import zlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from udabench.registry import METHODS

from .base import FitContext, UDAMethod, source_network
from .losses import class_probabilities


class ImageNets(nn.Module):
    """``count`` independent per-image CNNs of seed 001 §2.2 as grouped convolutions."""

    def __init__(self, count: int, in_channels: int, channels: int, convs: int, seeds):
        super().__init__()
        self.count, self.channels = count, channels
        layers, width = [], in_channels
        for _ in range(convs):
            layers += [nn.Conv2d(count * width, count * channels, 3, padding=1, groups=count), nn.ReLU(),
                       nn.BatchNorm2d(count * channels)]
            width = channels
        layers += [nn.Conv2d(count * channels, count * channels, 1, groups=count), nn.BatchNorm2d(count * channels)]
        self.layers = nn.Sequential(*layers)
        generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        with torch.no_grad():
            for conv in (m for m in self.layers if isinstance(m, nn.Conv2d)):
                for i, g in enumerate(generators):     # PyTorch's default Conv2d init, per image
                    rows = slice(i * channels, (i + 1) * channels)
                    nn.init.kaiming_uniform_(conv.weight[rows], a=math.sqrt(5), generator=g)
                    bound = 1 / math.sqrt(conv.weight[rows][0].numel())
                    nn.init.uniform_(conv.bias[rows], -bound, bound, generator=g)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(count, C_in, H, W) images -> (count, channels, H, W) responses."""
        n, c, h, w = images.shape
        return self.layers(images.reshape(1, n * c, h, w)).reshape(n, self.channels, h, w)


def refinement_losses(response: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per image (N,): the feature-similarity CE against its own argmax and the spatial-continuity L1
    of vertical and horizontal response differences (each a mean over its elements), and the argmax."""
    labels = response.argmax(1)
    similarity = F.cross_entropy(response, labels, reduction='none').flatten(1).mean(1)
    continuity = ((response[:, :, 1:] - response[:, :, :-1]).abs().flatten(1).mean(1)
                  + (response[:, :, :, 1:] - response[:, :, :, :-1]).abs().flatten(1).mean(1))
    return similarity, continuity, labels


def clusters_to_classes(clusters: torch.Tensor, classes: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Each image's clusters (N, H, W) relabelled by the majority of ``classes`` (N, H, W) over the
    cluster's pixels (ties: the lower class id)."""
    out = torch.empty_like(classes)
    for i, (cluster, cls) in enumerate(zip(clusters, classes)):
        ids, inverse = torch.unique(cluster, return_inverse=True)
        votes = torch.zeros(len(ids), num_classes, dtype=torch.long, device=cls.device)
        votes.index_put_((inverse.flatten(), cls.flatten()), torch.ones_like(cls.flatten()), accumulate=True)
        out[i] = votes.argmax(1)[inverse]
    return out


@METHODS.register_module(name='unsup_backprop')
class UnsupervisedBackprop(UDAMethod):
    tasks = ('skin', 'urban')
    uses_target_images = False       # each test image is clustered at prediction time, on its own

    def __init__(self, channels: int = 100, convs: int = 2, max_iters: int = 1000, min_labels: int = 3,
                 lr: float = 0.1, momentum: float = 0.9, sim_weight: float = 1.0, con_weight: float = 1.0,
                 predict_batch_size: int = 64):
        super().__init__()
        if convs < 1 or channels < 2 or max_iters < 1 or min_labels < 1:
            raise ValueError(f'method: unsup_backprop needs convs >= 1, channels >= 2, max_iters >= 1 and '
                             f'min_labels >= 1; got {convs}, {channels}, {max_iters}, {min_labels}')
        self.channels, self.convs, self.max_iters, self.min_labels = channels, convs, max_iters, min_labels
        self.lr, self.momentum, self.sim_weight, self.con_weight = lr, momentum, sim_weight, con_weight
        self.predict_batch_size = predict_batch_size
        self.iterations_used, self.cluster_counts, self.seconds = [], [], []

    def fit(self, ctx: FitContext) -> None:
        self.use_context(ctx)
        self.seed = ctx.seed
        self.net = source_network(ctx)

    def image_seeds(self, images: torch.Tensor) -> list[int]:
        return [int(np.random.SeedSequence([self.seed, zlib.crc32(x.cpu().numpy().tobytes())]).generate_state(1)[0])
                for x in images]

    def cluster(self, images: torch.Tensor) -> torch.Tensor:
        """Each normalised image's clusters (N, H, W), trained as the module docstring says."""
        started = time.time()
        with torch.enable_grad():
            nets = ImageNets(len(images), images.shape[1], self.channels, self.convs, self.image_seeds(images))
            nets = nets.to(images.device).train()
            optimizer = torch.optim.SGD(nets.parameters(), lr=self.lr, momentum=self.momentum)
            x = (images + 1) / 2                                   # [-1, 1] -> [0, 1], as the official /255
            clusters = torch.empty(images.shape[0], *images.shape[2:], dtype=torch.long, device=images.device)
            active = torch.ones(len(images), dtype=torch.bool, device=images.device)
            stopping = torch.zeros_like(active)                    # reached min_labels: one more forward
            used = torch.full((len(images),), self.max_iters, dtype=torch.long)
            for step in range(self.max_iters + 1):
                similarity, continuity, labels = refinement_losses(nets(x))
                finished = stopping & active if step < self.max_iters else active
                clusters[finished] = labels[finished]
                active &= ~finished
                if not active.any():
                    break
                counts = torch.tensor([len(torch.unique(labels[i])) for i in range(len(labels))], device=labels.device)
                newly = active & (counts <= self.min_labels)
                used[newly.cpu()] = step + 1
                stopping |= newly
                loss = (self.sim_weight * similarity + self.con_weight * continuity)[active].sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        self.iterations_used.append(used.numpy())
        self.cluster_counts.append(np.array([len(torch.unique(c)) for c in clusters]))
        self.seconds.append((time.time() - started) / len(images))
        return clusters

    @torch.no_grad()
    def predict_steps(self, images: torch.Tensor) -> dict:
        self.net.eval()
        source = class_probabilities(self.net(images))
        skin = source.ndim == 3
        classes = (source > 0.5).long() if skin else source.argmax(1)
        mapped = clusters_to_classes(self.cluster(images), classes, 2 if skin else source.shape[1])
        final = mapped.float() if skin else F.one_hot(mapped, source.shape[1]).permute(0, 3, 1, 2).float()
        return {'source_only': source, 'final': final}

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.predict_steps(images)['final']

    def extra_results(self) -> dict:
        if not self.seconds:
            return {}
        used, counts = np.concatenate(self.iterations_used), np.concatenate(self.cluster_counts)
        return {'clustering': {'iterations_used': {'mean': float(used.mean()), 'max': int(used.max())},
                               'clusters': {'mean': float(counts.mean()), 'max': int(counts.max())},
                               'seconds_per_image': float(np.mean(self.seconds)), 'max_iters': self.max_iters,
                               'channels': self.channels}}
