"""The method interface (DAFormer's ``UDADecorator`` in spirit) and the supervised training step.

A method wraps a segmentation network (``self.net``) and owns only its own losses and extra
networks. The runner calls ``fit(ctx)`` once and ``predict(images)`` on target batches.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from udabench.datasets.base import RowView, SegmentationSet
from udabench.engine import (StageRunner, autocast, batch_indices, build_optimizer, code_version, fingerprint,
                             iterations_for)

from .losses import class_probabilities, segmentation_loss
from .networks import SegmentationNet


@dataclass
class FitContext:
    """What a method may use while training.

    ``target_images`` are the unlabelled target images, normalised, read a batch at a time (a
    ``RowView``; an array given here is wrapped in one), None for target-independent methods;
    ``target_labelled`` is given only to methods that declare ``needs_target_labels`` (the oracle).
    """

    source: SegmentationSet
    stages: StageRunner
    cache_dir: Path
    seed: int = 0
    device: str = 'cpu'
    net: dict = field(default_factory=dict)
    seg_recipe: dict = field(default_factory=dict)
    target_images: RowView | None = None
    target_labelled: SegmentationSet | None = None
    progress: bool = True
    #: What every stage key includes besides its own config: code version, threads, device.
    key_parts: dict = field(default_factory=dict)
    #: ``profile.precision`` ('float32', 'tf32', 'bf16'); methods take it with ``UDAMethod.use_context``.
    precision: str = 'float32'

    def __post_init__(self):
        if isinstance(self.target_images, np.ndarray):
            self.target_images = RowView(self.target_images)


def to_tensor(array: np.ndarray, device: str) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(array), dtype=torch.float32, device=device)


class BatchReader:
    """Arrays (``RowView``s, or arrays) a stage draws batches from: ``batch(indices)`` reads those
    rows on the host (from disk, for a prepared real set, which is never held whole) and copies them
    to the device, ``to_tensor(array[indices])``. The strides numpy gives that copy (an image array
    made as ``x[:, None]`` comes out with stride 1 on its size-1 channel axis) make torch treat it as
    channels-last, and oneDNN's channels-last kernels round differently from the plain layout, so any
    other way of making the batch would change every result's last digits."""

    def __init__(self, arrays: dict, device: str):
        self.arrays, self.device = arrays, device

    def __len__(self):
        return len(next(iter(self.arrays.values())))

    def batch(self, indices, keys=None) -> dict:
        return {k: to_tensor(self.arrays[k][indices], self.device) for k in keys or self.arrays}


def segmentation_targets(masks: np.ndarray, num_classes: int) -> RowView:
    """What the losses take, read a batch of rows at a time: (N, 1, H, W) 0/1 floats for one sigmoid
    channel, else (N, H, W) class ids (255 ignored; as floats, exact, made long by the loss)."""
    return RowView(masks, lambda rows: (rows[:, None] if num_classes == 1 else rows).astype(np.float32))


#: The class id of an ignored pixel in ``class_map``s.
IGNORE = -1


def class_map(labels: torch.Tensor) -> torch.Tensor:
    """(N, H, W) long class ids from what the losses take ((N, 1, H, W) 0/1 or (N, H, W) ids), with
    the ignored pixels (-1 pseudo-labels, 255 ground truth) as ``IGNORE``."""
    ids = (labels[:, 0] if labels.ndim == 4 else labels).long()
    return torch.where((ids < 0) | (ids == 255), torch.full_like(ids, IGNORE), ids)


def resize_classes(classes: torch.Tensor, size) -> torch.Tensor:
    """Nearest-neighbour resize of (N, H, W) class ids to the feature map's ``size``."""
    return F.interpolate(classes[:, None].float(), size=tuple(size), mode='nearest')[:, 0].long()


def train_segmentation(net: SegmentationNet, data: SegmentationSet, recipe: dict, stages: StageRunner,
                       stage: str, seed: int, device: str, precision: str = 'float32') -> None:
    """Supervised training of ``net`` on ``data`` with ``recipe`` = loss, optimizer, batch_size, epochs
    (seed 002 §4.1: Dice+BCE with RMSprop 1e-3 for UNet, focal with RMSprop 1e-2 for DeepLabv3+)."""
    arrays = BatchReader({'x': data.normalised_images(), 'y': segmentation_targets(data.masks, net.num_classes)}, device)
    loss_fn = segmentation_loss(recipe['loss'])
    optimizer = build_optimizer(net.parameters(), recipe['optimizer'])
    batch = recipe['batch_size']
    num_iters = iterations_for(recipe['epochs'], len(data), batch)
    net.train()

    def step(it):
        b = arrays.batch(batch_indices(len(data), batch, it, seed))
        with autocast(device, precision):
            loss = loss_fn(net(b['x']), b['y'])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {'loss': loss}

    stages.run(stage, step, num_iters, {'net': net, 'optimizer': optimizer})
    net.eval()


def cached_stages(ctx: FitContext, producer: str, kind: str, *parts) -> StageRunner:
    """A StageRunner in a cache folder keyed by the source set's content, the seed, ``ctx.key_parts``
    (threads, device, precision), the code version of ``producer`` (the module that trains the stage,
    its ``__name__``: not the calling method's, so that every method shares it) and ``parts`` (the
    stage's config), so that a model trained once (the source network, GLSS's VAE) serves every run
    that needs it and a changed input or changed code retrains."""
    key_parts = dict(ctx.key_parts, code_version=code_version(producer))
    key = fingerprint(kind, ctx.source.content_hash, ctx.seed, key_parts, *parts)
    return ctx.stages.child(Path(ctx.cache_dir) / kind / key, prefix=f'{kind}/')


def check_target_fraction(fraction: float, allow_zero: bool = False) -> float:
    """``method.target_fraction`` as given, or a ValueError naming the option and its range."""
    low_ok = fraction >= 0 if allow_zero else fraction > 0
    if not (isinstance(fraction, (int, float)) and low_ok and fraction <= 1):
        raise ValueError(f'method.target_fraction must be in {"[0" if allow_zero else "(0"}, 1], got {fraction!r}')
    return fraction


def target_fraction_indices(count: int, fraction: float, seed: int) -> np.ndarray:
    """Indices of the seeded ``fraction`` of ``count`` target images used for training in the
    target-fraction study (seed 000 §2.4, Table 1), in permutation order; at least one image."""
    order = np.random.default_rng(seed).permutation(count)
    return order[:max(1, int(fraction * count))]


def source_network(ctx: FitContext) -> SegmentationNet:
    """The Source Only network for ``ctx`` (net, recipe, source set, seed), trained once and cached.

    Source Only, GLSS (S_psi and P_psi) and the warm start of the UDA baselines share it, so one
    training serves every method and every target.
    """
    torch.manual_seed(ctx.seed)   # before building: the cached network must not depend on its caller
    net = SegmentationNet(**ctx.net).to(ctx.device)
    stages = cached_stages(ctx, __name__, f'source_{ctx.net["name"]}', ctx.net, ctx.seg_recipe)
    train_segmentation(net, ctx.source, ctx.seg_recipe, stages, 'segmentation', ctx.seed, ctx.device, ctx.precision)
    return net


class UDAMethod(nn.Module):
    """Base class: a method holds ``self.net`` after ``fit`` and predicts skin probabilities."""

    #: The tasks (``udabench.tasks``) the method is built for; the urban path is multi-class.
    tasks = ('skin',)
    #: The oracle alone trains on target labels; the runner then evaluates on the held-out split only.
    needs_target_labels = False
    #: Target-independent methods (Source Only, GLSS) never receive target images while training.
    uses_target_images = True
    #: Where and in which ``profile.precision`` the method trains (``use_context`` sets them).
    device, precision = 'cpu', 'float32'

    def use_context(self, ctx: FitContext) -> None:
        self.device, self.precision = ctx.device, ctx.precision

    def autocast(self):
        """The context of the forward passes: bf16 autocast under ``profile.precision='bf16'``, else none."""
        return autocast(self.device, self.precision)

    def fit(self, ctx: FitContext) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Skin probabilities (N, H, W), or class probabilities (N, C, H, W), for normalised images."""
        self.net.eval()
        return class_probabilities(self.net(images))

    def predict_steps(self, images: torch.Tensor) -> dict:
        """Predictions keyed by step; ``'final'`` is the method's answer (GLSS adds LS iterations)."""
        return {'final': self.predict(images)}
