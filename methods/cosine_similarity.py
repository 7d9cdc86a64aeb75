"""Maximising the cosine similarity between spatial features (Chung, Kim & Kwak, WACV 2022; seed 003).

Self-training at the feature level, no adversarial loss (seed 003 §C: it disrupts the cosine loss).
Each step: (A) the source features (the decoder's, the classifier's input) whose predicted class is
correct are split by class and enqueued, detached, in a class-wise FIFO dictionary of the latest
``dictionary_size`` source features; (B) the target pseudo-label's ignored pixels are filled with the
current prediction's class (the augmented label y-dot), the target features are split by it, and for
each class the cosine matrix M^c between them and the dictionary's class-c features is computed;
the elements above ``threshold`` are pushed to 1 (seed 003 Eq. 7-8, one layer):
L_cos = 1/C sum_c mean |M-hat^c - 1|, M-hat^c = 1[M^c > T_cos] * M^c. The total loss is the source
segmentation loss + ``lambda_ssl`` x the target loss to the pseudo-labels + ``lambda_cos`` x L_cos.
Pseudo-labels (seed 003 §A, after BDL): a separately trained network's argmax, kept where its
confidence reaches the class's median confidence over the training target set, capped at 0.9
(``adaptation.pseudo_labels``, shared with BDL), made once before training on the images the stage trains on.

Choices where seed 003 (the supplement only; the main paper's text is not available here) is silent,
each a setting: the separately trained network is the Source Only network (the one the run starts
from); ``threshold`` 0.5 (the supplement's example baseline threshold); ``dictionary_size`` 1024 per
class; ``lambda_cos`` 1 and ``lambda_ssl`` 1 (grid over ``threshold`` and ``lambda_cos``); labels and
predicted classes are made at image resolution and resized to the feature map by nearest neighbour
(as seed 003 §D does for FCN); each |M-hat - 1| is a mean over the matrix, not Eq. 8's sum (the sum
grows with the dictionary and the batch; the mean is the sum over a constant); a batch with more
correct class-c features than the dictionary holds enqueues an evenly strided subset of them.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from udabench.registry import METHODS

from .adaptation import TargetAdaptation
from .base import IGNORE, class_map, resize_classes
from .discriminator import predicted_classes

def split_by_class(features: torch.Tensor, classes: torch.Tensor, num_classes: int) -> dict:
    """class -> (n, F) rows of the (N, F, h, w) ``features`` whose (N, h, w) class is it (ignored: none)."""
    rows = features.permute(0, 2, 3, 1).reshape(-1, features.shape[1])
    flat = classes.reshape(-1)
    return {c: rows[flat == c] for c in range(num_classes) if bool((flat == c).any())}


def thresholded_cosine_loss(target: torch.Tensor, source: torch.Tensor, threshold: float) -> torch.Tensor:
    """mean |M-hat - 1| of seed 003 Eq. 7-8 for (n, F) target and (k, F) source features."""
    cosine = F.normalize(target, dim=1) @ F.normalize(source, dim=1).t()
    selected = torch.where(cosine > threshold, cosine, torch.zeros_like(cosine))
    return (selected - 1).abs().mean()


class FeatureDictionary(nn.Module):
    """Per class a FIFO queue of the latest ``size`` source feature vectors (buffers: checkpointed)."""

    def __init__(self, num_classes: int, size: int, channels: int):
        super().__init__()
        self.size = size
        self.register_buffer('features', torch.zeros(num_classes, size, channels))
        self.register_buffer('filled', torch.zeros(num_classes, dtype=torch.long))
        self.register_buffer('head', torch.zeros(num_classes, dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, cls: int, rows: torch.Tensor) -> None:
        if len(rows) > self.size:
            rows = rows[torch.linspace(0, len(rows) - 1, self.size, device=rows.device).round().long()]
        slots = (self.head[cls] + torch.arange(len(rows), device=rows.device)) % self.size
        self.features[cls, slots] = rows.detach().float()
        self.head[cls] = (self.head[cls] + len(rows)) % self.size
        self.filled[cls] = min(self.size, int(self.filled[cls]) + len(rows))

    def entries(self, cls: int) -> torch.Tensor:
        return self.features[cls, :int(self.filled[cls])]


@METHODS.register_module(name='cosine_similarity')
class CosineSimilarity(TargetAdaptation):

    def __init__(self, lambda_cos: float = 1.0, lambda_ssl: float = 1.0, threshold: float = 0.5,
                 dictionary_size: int = 1024, ssl_cap: float = 0.9, **kwargs):
        super().__init__(**kwargs)
        if not -1.0 <= threshold < 1.0:
            raise ValueError(f'method.threshold is a cosine threshold in [-1, 1), got {threshold}')
        if dictionary_size < 1:
            raise ValueError(f'method.dictionary_size must be at least 1, got {dictionary_size}')
        self.lambda_cos, self.lambda_ssl, self.threshold = lambda_cos, lambda_ssl, threshold
        self.dictionary_size, self.ssl_cap = dictionary_size, ssl_cap

    def prepare(self, ctx):
        self.classes = max(self.net.num_classes, 2)
        channels = self.net.model.decode_head.conv_seg.in_channels
        self.dictionary = FeatureDictionary(self.classes, self.dictionary_size, channels).to(ctx.device)

    def outputs(self, images):
        logits, features = self.net.capture(images, 'decode_head.conv_seg', take='input')
        return {'main': logits, 'features': features.float()}

    def source_loss(self, out, batch):
        """The segmentation loss; and process A: enqueue the correctly classified source features."""
        size = out['features'].shape[-2:]
        truth = resize_classes(class_map(batch['ys']), size)
        predicted = resize_classes(predicted_classes(out['main']), size)
        correct = torch.where(predicted == truth, truth, torch.full_like(truth, IGNORE))
        for cls, rows in split_by_class(out['features'].detach(), correct, self.classes).items():
            self.dictionary.enqueue(cls, rows)
        return {'seg': self.seg_loss(out['main'], batch['ys'])}

    def cosine_loss(self, out, pseudo: torch.Tensor) -> torch.Tensor:
        """Process B and Eq. 8: target features split by the augmented pseudo-label against the dictionary."""
        augmented = torch.where(pseudo == IGNORE, predicted_classes(out['main']), pseudo)
        split = split_by_class(out['features'], resize_classes(augmented, out['features'].shape[-2:]), self.classes)
        terms = [thresholded_cosine_loss(rows, self.dictionary.entries(cls), self.threshold)
                 for cls, rows in split.items() if self.dictionary.filled[cls] > 0]
        return sum(terms, out['features'].new_zeros(())) / self.classes

    def target_loss(self, out, batch, iteration):
        labels = batch['yt']
        return {'ssl': self.lambda_ssl * self.seg_loss(out['main'], labels.clamp_min(0), valid=(labels >= 0).float()),
                'cos': self.lambda_cos * self.cosine_loss(out, class_map(labels))}

    def fit(self, ctx):
        self.build(ctx)
        self.adapt(ctx, ctx.source.normalised_images(), 'adaptation', self.target_pseudo_labels(ctx, self.ssl_cap))
