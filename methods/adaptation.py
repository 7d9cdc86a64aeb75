"""The training loop shared by the methods that see labelled source and unlabelled target batches.

Written after ADVENT's short training step: (1) with the discriminators frozen, the segmentation
loss on a source batch plus, on a target batch, the method's adversarial losses (fool the
discriminators: source label) and any other target loss; (2) the discriminators learn to tell the
detached source inputs (label 0) from the target ones (label 1), each of the two losses halved
(AdaptSegNet/ADVENT; CLAN and DADA do not halve). A method supplies only its outputs, its
discriminator inputs and weights, and its extra losses.

Shared settings (AdaptSegNet/ADVENT/CLAN code; seed 000 §2.2): segmentation SGD lr 2.5e-4,
momentum 0.9, weight decay 5e-4, the classifier heads (here the decode and auxiliary heads, the
analogue of DeepLab-v2's ``layer5``/``layer6``) and every newly initialised part at 10x that lr in
a second parameter group; discriminators Adam lr 1e-4, betas (0.9, 0.99); poly 0.9 on every
group's own base lr. The poly horizon ``max_iters`` is longer than the ``stop_iters`` trained, in
each original's ratio (``horizon_ratio``: ADVENT 250k/120k, AdaptSegNet 250k/150k), so the lr
ends at about half its base value instead of at 0.

BatchNorm (``bn``): ``'affine_frozen'`` (default, every original): affine parameters frozen
(``requires_grad=False``) but the network trains in ``train()`` mode, so the running statistics keep
following the alternating source and target batches; ``'frozen'``: statistics frozen too (eval
mode); ``'trained'``: BatchNorm trains as any layer.

Deviation: the segmentation network starts from the suite's Source Only network (the originals
start from ImageNet weights, which cannot be had here; with random init SGD at 2.5e-4 learns
nothing in a CPU budget). ``warm_start=False`` starts from random weights instead.

Diagnostics, in every step's log (the runner writes them to ``<result>.log.csv``): each weighted
loss, ``adv_<d>_bce`` (the generator's unweighted BCE), ``disc_<d>`` (the discriminator loss as
optimised) and ``disc_<d>_bce`` (the mean of its source and target BCE, ln 2 at chance); every
``diagnostics_every`` steps ``grad_ratio_adv`` = ||grad lambda*L_adv|| / ||grad L_seg|| and
``grad_ratio_target`` (the other target losses) on the backbone's parameters. ``extra_results``
summarises them per stage (``adaptation_diagnostics`` in the result file).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

from udabench.datasets.base import RowView
from udabench.engine import batch_indices, build_optimizer

from .base import (BatchReader, FitContext, UDAMethod, check_target_fraction, segmentation_targets, source_network,
                   target_fraction_indices, to_tensor)
from .discriminator import (SOURCE_LABEL, TARGET_LABEL, FCDiscriminator, domain_bce, two_class_probs,
                            weighted_self_information)
from .losses import segmentation_loss
from .networks import SegmentationNet

BN_MODES = ('affine_frozen', 'frozen', 'trained')
#: Keys of earlier releases, with what replaced them (an error names the new key).
RENAMED = {'freeze_bn': "method.bn ('affine_frozen' | 'frozen' | 'trained'; freeze_bn=True was 'frozen')",
           'iterations': 'method.stop_iters (iterations trained) and method.max_iters (the poly horizon)'}


def batchnorms(module: nn.Module) -> list:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def summarise_diagnostics(logs: list[dict]) -> dict:
    """Per discriminator: its mean BCE over the last 10 % of steps, the fraction of steps below ln 2
    (chance) and the first step below it; the mean and median of each logged gradient ratio."""
    out = {}
    tail = max(1, len(logs) // 10)
    for key in sorted({k for log in logs for k in log}):
        values = np.array([log[key] for log in logs if key in log], dtype=float)
        if key.startswith('disc_') and key.endswith('_bce'):
            below = np.flatnonzero(values < math.log(2))
            out[key] = {'last_mean': float(values[-tail:].mean()), 'fraction_below_ln2': float((values < math.log(2)).mean()),
                        'first_below_ln2': int(below[0]) if len(below) else None}
        elif key.startswith('grad_ratio'):
            out[key] = {'mean': float(values.mean()), 'median': float(np.median(values)), 'measured': len(values)}
    return out


def predicted_classes(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class, its confidence), both (N, H, W), from skin probabilities (N, H, W) (the
    prediction is p > 0.5: p = 0.5 exactly goes to the background) or class probabilities (N, C, H, W)."""
    if probs.ndim != 4:
        pred = (probs > 0.5).astype(np.uint8)
        return pred, np.where(pred == 1, probs, 1 - probs)
    return probs.argmax(1).astype(np.uint8), probs.max(1)


def confident_labels(pred: np.ndarray, conf: np.ndarray, cap: float = 0.9) -> np.ndarray:
    """BDL's SSL labels (N, H, W): the predicted class ``pred`` where its confidence ``conf`` reaches
    the class's threshold, -1 (ignore) elsewhere; the threshold is the class's confidence at index
    round(n/2) of its n sorted ones over all the images (BDL's SSL.py), at most ``cap``."""
    labels = np.full(pred.shape, -1.0, np.float32)
    for cls in np.flatnonzero(np.bincount(pred.ravel())):          # the classes predicted somewhere
        chosen = pred == cls
        ranked = np.sort(conf[chosen])
        threshold = min(float(ranked[int(np.round(len(ranked) * 0.5))]), cap)   # < n for every n >= 1
        labels[chosen & (conf >= threshold)] = cls
    return labels


def pseudo_labels(probs: np.ndarray, cap: float = 0.9) -> np.ndarray:
    """``confident_labels`` of skin probabilities (N, H, W) or class probabilities (N, C, H, W)."""
    return confident_labels(*predicted_classes(probs), cap)


class TargetAdaptation(UDAMethod):
    """Base class; subclasses set ``discriminator_channels`` and override the hooks below."""

    #: Multi-class as the originals: softmax outputs (``two_class_probs``) into the discriminators.
    tasks = ('skin', 'urban')
    needs_source_depth = False
    #: Each discriminator loss is halved (AdaptSegNet/ADVENT code); CLAN's and DADA's code do not halve.
    disc_loss_scale = 0.5
    #: The original's poly horizon over its stop iteration; ``max_iters`` defaults to ``stop_iters`` times it.
    horizon_ratio = 1.0

    def __init__(self, stop_iters: int = 1000, max_iters: int | None = None, batch_size: int = 8,
                 optimizer: dict | None = None, disc_optimizer: dict | None = None, poly_power: float = 0.9,
                 head_lr_mult: float = 10.0, warm_start: bool = True, target_fraction: float = 1.0,
                 disc_width: int = 64, bn: str = 'affine_frozen', diagnostics_every: int = 10, **unknown):
        for key in unknown:
            if key in RENAMED:
                raise ValueError(f'method.{key} is no longer a setting: use {RENAMED[key]}')
        if unknown:
            raise TypeError(f'unexpected keyword arguments {sorted(unknown)}')
        super().__init__()
        if bn not in BN_MODES:
            raise ValueError(f'method.bn must be one of {BN_MODES}, got {bn!r}')
        self.stop_iters, self.batch_size, self.poly_power = stop_iters, batch_size, poly_power
        self.max_iters = max_iters or int(round(stop_iters * self.horizon_ratio))
        if self.max_iters < stop_iters:
            raise ValueError(f'method.max_iters ({self.max_iters}) must not be below method.stop_iters ({stop_iters})')
        self.optimizer = optimizer or dict(type='SGD', lr=2.5e-4, momentum=0.9, weight_decay=5e-4)
        self.disc_optimizer = disc_optimizer or dict(type='Adam', lr=1e-4, betas=(0.9, 0.99))
        self.head_lr_mult = head_lr_mult
        self.warm_start, self.target_fraction, self.disc_width = warm_start, check_target_fraction(target_fraction), disc_width
        self.bn, self.diagnostics_every = bn, diagnostics_every
        self.aux_head = False
        self.extra_optimizers: dict = {}
        self.diagnostics: dict = {}

    # ------------------------------------------------------------------ hooks for the methods
    def discriminator_channels(self, num_classes: int) -> dict:
        """name -> input channels of each discriminator (none by default)."""
        return {}

    def outputs(self, images: torch.Tensor) -> dict:
        """The network's outputs the losses need; ``'main'`` holds the logits."""
        return {'main': self.net(images)}

    def source_loss(self, out: dict, batch: dict) -> dict:
        """Losses on the labelled source batch: ``batch['ys']`` masks, ``batch['ds']`` depth (DADA)."""
        return {'seg': self.seg_loss(out['main'], batch['ys'])}

    def discriminator_inputs(self, out: dict) -> dict:
        """name -> what discriminator ``name`` sees for these outputs."""
        return {}

    def adversarial_weights(self, iteration: int) -> dict:
        """name -> weight of the generator's adversarial loss for discriminator ``name``."""
        return {}

    def pixel_weights(self, out: dict, iteration: int) -> dict:
        """name -> optional per-pixel weight of the target adversarial losses (CLAN)."""
        return {}

    def discriminate(self, name: str, inputs: torch.Tensor) -> torch.Tensor:
        return self.discriminators[name](inputs)

    def target_loss(self, out: dict, batch: dict, iteration: int) -> dict:
        """Other losses on the target outputs (MinEnt's entropy; the pseudo-labels ``batch['yt']`` of BDL and the cosine-similarity method)."""
        return {}

    def regulariser(self, iteration: int) -> dict:
        """Losses on the parameters (CLAN's weight discrepancy)."""
        return {}

    def head_modules(self) -> list:
        """Modules trained at ``head_lr_mult`` x the base lr: the classifier heads and new parts."""
        model = self.net.model
        return [model.decode_head, *([model.auxiliary_head] if getattr(model, 'auxiliary_head', None) else [])]

    def lr_factor(self, iteration: int) -> float:
        """Every optimiser's lr over its base lr at ``iteration``: poly over ``max_iters``."""
        return (1 - iteration / self.max_iters) ** self.poly_power

    # -------------------------------------------------------------------------- the loop
    def fit(self, ctx: FitContext) -> None:
        self.build(ctx)
        self.adapt(ctx, ctx.source.normalised_images(), 'adaptation')

    def build(self, ctx: FitContext) -> None:
        """The segmentation network (warm-started), the method's modules and its discriminators."""
        self.use_context(ctx)
        torch.manual_seed(ctx.seed)
        self.net = SegmentationNet(**ctx.net, aux_head=self.aux_head).to(ctx.device)
        if self.warm_start:
            missing = self.net.load_state_dict(source_network(ctx).state_dict(), strict=False).missing_keys
            assert all('auxiliary_head' in k for k in missing), missing
        self.set_bn_mode()
        self.prepare(ctx)
        num_classes = ctx.net.get('num_classes', 1)
        self.discriminators = nn.ModuleDict({k: FCDiscriminator(c, self.disc_width)
                                             for k, c in self.discriminator_channels(max(num_classes, 2)).items()})
        self.discriminators.to(ctx.device)
        self.seg_loss = segmentation_loss(ctx.seg_recipe['loss'])

    def set_bn_mode(self) -> None:
        """BatchNorm of the segmentation network as ``self.bn`` says (eval mode for 'frozen' is set in ``train``)."""
        for module in batchnorms(self.net):
            module.requires_grad_(self.bn == 'trained')

    def target_training_indices(self, ctx: FitContext) -> np.ndarray:
        """The target images every stage of this method trains on: all of them, or the seeded
        ``target_fraction`` of them (seed 000 §2.4, Table 1)."""
        count = len(ctx.target_images)
        if self.target_fraction == 1.0:
            return np.arange(count)
        return np.sort(target_fraction_indices(count, self.target_fraction, ctx.seed))

    def segmentation_param_groups(self) -> list[dict]:
        """SGD groups: the trainable rest at the base lr, ``head_modules`` at ``head_lr_mult`` x it."""
        heads = {id(p) for m in self.head_modules() for p in m.parameters()}
        trainable = [p for p in self.net.parameters() if p.requires_grad and id(p) not in heads]
        head_params = [p for m in self.head_modules() for p in m.parameters() if p.requires_grad]
        return [{'params': trainable}, {'params': head_params, 'lr': self.optimizer['lr'] * self.head_lr_mult}]

    def adapt(self, ctx: FitContext, source_images: RowView, stage: str,
              target_labels: np.ndarray | None = None) -> None:
        """One checkpointed adaptation stage on ``source_images`` (BDL passes translated ones) and
        the target images; ``target_labels`` are pseudo-labels (-1 = ignore) for self-training (BDL, cosine similarity)."""
        seg_opt = build_optimizer(self.segmentation_param_groups(), self.optimizer)
        disc_opt = build_optimizer(self.discriminators.parameters(), self.disc_optimizer) if self.discriminators else None
        scheduled = [o for o in (seg_opt, disc_opt, *self.extra_optimizers.values()) if o is not None]
        base_lrs = [[g['lr'] for g in o.param_groups] for o in scheduled]
        arrays = {'xs': source_images, 'ys': segmentation_targets(ctx.source.masks, self.net.num_classes)}
        if self.needs_source_depth:
            arrays['ds'] = RowView(ctx.source.depth, lambda rows: rows[:, None].astype(np.float32))
        target = {'xt': ctx.target_images}
        if target_labels is not None:
            target['yt'] = segmentation_targets(target_labels, self.net.num_classes)
        keep = self.target_training_indices(ctx)
        sources = BatchReader(arrays, ctx.device)
        targets = BatchReader({k: v.take(keep) for k, v in target.items()}, ctx.device)

        def step(it):
            factor = self.lr_factor(it)
            for opt, bases in zip(scheduled, base_lrs):
                for group, base in zip(opt.param_groups, bases):
                    group['lr'] = base * factor
            batch = {**sources.batch(batch_indices(len(sources), self.batch_size, it, ctx.seed)),
                     **targets.batch(batch_indices(len(targets), self.batch_size, it, ctx.seed + 1))}
            return self.train_step(batch, it, seg_opt, disc_opt)

        self.train()
        logs = ctx.stages.run(stage, step, self.stop_iters,
                              {'method': self, 'seg_opt': seg_opt, **({'disc_opt': disc_opt} if disc_opt else {}),
                               **self.extra_optimizers})
        self.diagnostics[stage] = summarise_diagnostics(logs)
        self.eval()

    def train(self, mode: bool = True):
        """Train mode; BatchNorm as ``self.bn`` says ('frozen': eval mode, statistics fixed)."""
        super().train(mode)
        if hasattr(self, 'net'):
            if mode and self.bn == 'frozen':
                for module in batchnorms(self.net):
                    module.eval()
            self.set_bn_mode()
        return self

    def prepare(self, ctx: FitContext) -> None:
        """Build method-specific modules before the optimisers are made (CLAN's second classifier).
        Optimisers of a method's own networks go in ``self.extra_optimizers`` (checkpointed with the
        stage, scheduled with the others)."""

    def gradient_ratios(self, losses: dict, source_keys, target_keys) -> dict:
        """||grad|| on the backbone of the adversarial and the other target losses over that of the source losses."""
        params = [p for p in self.net.model.backbone.parameters() if p.requires_grad]

        def norm(keys):
            terms = [losses[k] for k in keys if losses[k].requires_grad]
            if not terms:
                return 0.0
            grads = torch.autograd.grad(sum(terms), params, retain_graph=True, allow_unused=True)
            return math.sqrt(sum(torch.stack([g.pow(2).sum() for g in grads if g is not None]).double().tolist()))

        seg = norm(source_keys)
        adv = [k for k in target_keys if k.startswith('adv_')]
        other = [k for k in target_keys if not k.startswith('adv_')]
        out = {}
        for name, keys in (('adv', adv), ('target', other)):
            if keys and seg > 0:
                out[f'grad_ratio_{name}'] = norm(keys) / seg
        return out

    def train_step(self, batch: dict, it: int, seg_opt, disc_opt) -> dict:
        seg_opt.zero_grad(set_to_none=True)
        if disc_opt:
            disc_opt.zero_grad(set_to_none=True)
        self.discriminators.requires_grad_(False)
        with self.autocast():
            src = self.outputs(batch['xs'])
            tgt = self.outputs(batch['xt'])
            source_losses = self.source_loss(src, batch)
            target_losses = self.target_loss(tgt, batch, it)
            losses = {**source_losses, **target_losses, **self.regulariser(it)}
            d_src, d_tgt = self.discriminator_inputs(src), self.discriminator_inputs(tgt)
            weights, pixel = self.adversarial_weights(it), self.pixel_weights(tgt, it)
            logs = {}
            for name in self.discriminators:
                logits = self.discriminate(name, d_tgt[name])
                bce = domain_bce(logits, SOURCE_LABEL, pixel.get(name))
                losses[f'adv_{name}'] = weights[name] * bce
                logs[f'adv_{name}_bce'] = bce.detach()
        if self.diagnostics_every and it % self.diagnostics_every == 0:
            logs.update(self.gradient_ratios(losses, list(source_losses),
                                             [*target_losses, *(f'adv_{n}' for n in self.discriminators)]))
        sum(losses.values()).backward()
        logs.update({k: v.detach() for k, v in losses.items()})
        if disc_opt:
            self.discriminators.requires_grad_(True)
            for name in self.discriminators:
                w = pixel.get(name)
                with self.autocast():
                    d_s = self.discriminate(name, d_src[name].detach())
                    d_t = self.discriminate(name, d_tgt[name].detach())
                    d_loss = self.disc_loss_scale * (domain_bce(d_s, SOURCE_LABEL)
                                                     + domain_bce(d_t, TARGET_LABEL, None if w is None else w.detach()))
                d_loss.backward()
                logs[f'disc_{name}'] = d_loss.detach()
                with torch.no_grad():
                    logs[f'disc_{name}_bce'] = 0.5 * (domain_bce(d_s, SOURCE_LABEL) + domain_bce(d_t, TARGET_LABEL))
            disc_opt.step()
        seg_opt.step()
        return logs

    def target_pseudo_labels(self, ctx: FitContext, cap: float = 0.9) -> np.ndarray:
        """``confident_labels`` of the current network on the target images the stages train on (-1
        elsewhere and where unsure): BDL's SSL labels, seed 003 §A's. The images are predicted a
        batch at a time; only each pixel's class and confidence are kept for the thresholds."""
        keep = self.target_training_indices(ctx)
        images = ctx.target_images
        pred, conf = zip(*(predicted_classes(probs) for probs in self.predictions(images.take(keep), ctx.device)))
        labels = np.full((len(images), *images.shape[2:]), -1.0, np.float32)
        labels[keep] = confident_labels(np.concatenate(pred), np.concatenate(conf), cap)
        return labels

    @torch.no_grad()
    def predictions(self, images: RowView, device: str):
        """The network's probabilities on ``images``, a batch at a time (numpy)."""
        for rows in images.batches():
            yield self.predict(to_tensor(rows, device)).cpu().numpy()

    def extra_results(self) -> dict:
        return {'adaptation_diagnostics': self.diagnostics} if self.diagnostics else {}


class DepthAwareAdaptation(TargetAdaptation):
    """One discriminator on the main output's weighted self-information times a per-pixel depth cue,
    the (N, 1, H, W) network output named ``depth_cue``: DADA's predicted depth (Vu et al., ICCV 2019:
    depth-aware fusion) or the depth-distribution method's predicted class-depth density (seed 004),
    with weight ``lambda_adv``; both need source depth, and both official codes train the
    discriminator on the full (not halved) loss."""
    needs_source_depth = True
    disc_loss_scale = 1.0
    depth_cue: str
    lambda_adv: float

    def discriminator_channels(self, num_classes):
        return {'main': num_classes}

    def discriminator_inputs(self, out):
        return {'main': weighted_self_information(two_class_probs(out['main'])) * out[self.depth_cue]}

    def adversarial_weights(self, iteration):
        return {'main': self.lambda_adv}
