"""Evaluators: binary skin IoU/Dice and multi-class per-class IoU / mIoU.

Seed 002 §5.3 evaluates "on the entire target dataset": the headline IoU and Dice accumulate
TP/FP/FN over every pixel of every image. The per-image mean IoU (what the official GLSS code's
``mean_iou`` computes, with its epsilon smoothing) is reported beside it under its own name.
"""
from __future__ import annotations

import numpy as np

from .registry import EVALUATORS


@EVALUATORS.register_module(name='binary')
class BinarySegEvaluator:
    """Skin-class IoU and Dice of thresholded probabilities, accumulated over a whole set."""

    def __init__(self, threshold: float = 0.5, smooth: float = 1.0):
        self.threshold = threshold
        self.smooth = smooth
        self.reset()

    def reset(self):
        self.tp = self.fp = self.fn = 0
        self.per_image_iou: list[float] = []
        self.per_image_dice: list[float] = []

    def update(self, probs: np.ndarray, masks: np.ndarray):
        """Add a batch: ``probs`` skin probabilities and ``masks`` 0/1 labels, both (N, H, W)."""
        probs, masks = np.asarray(probs), np.asarray(masks)
        if probs.shape != masks.shape:
            raise ValueError(f'prediction shape {probs.shape} != mask shape {masks.shape}')
        pred = probs >= self.threshold
        gt = masks.astype(bool)
        axes = tuple(range(1, pred.ndim))
        tp = (pred & gt).sum(axes)
        fp = (pred & ~gt).sum(axes)
        fn = (~pred & gt).sum(axes)
        self.tp += int(tp.sum())
        self.fp += int(fp.sum())
        self.fn += int(fn.sum())
        s = self.smooth
        self.per_image_iou.extend(((tp + s) / (tp + fp + fn + s)).tolist())
        self.per_image_dice.extend(((2 * tp + s) / (2 * tp + fp + fn + s)).tolist())

    def compute(self) -> dict:
        union = self.tp + self.fp + self.fn
        # An empty union (no skin predicted nor present anywhere) is a perfect score.
        iou = self.tp / union if union else 1.0
        dice = 2 * self.tp / (union + self.tp) if union else 1.0
        return dict(iou=iou, dice=dice,
                    per_image_mean_iou=float(np.mean(self.per_image_iou)) if self.per_image_iou else float('nan'),
                    per_image_mean_dice=float(np.mean(self.per_image_dice)) if self.per_image_dice else float('nan'),
                    images=len(self.per_image_iou), tp=self.tp, fp=self.fp, fn=self.fn)


@EVALUATORS.register_module(name='multiclass')
class MultiClassIoUEvaluator:
    """Per-class IoU from a dataset-level confusion matrix, and mIoU over a class subset.

    ``class_subset`` selects the classes that enter the mean (e.g. SYNTHIA -> Cityscapes
    mIoU-16 and mIoU-13, seed 002 Table 3); pixels labelled ``ignore_index`` never count.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255, class_subsets: dict | None = None,
                 class_names: list[str] | None = None):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.class_subsets = class_subsets or {'miou': list(range(num_classes))}
        self.class_names = class_names or [str(i) for i in range(num_classes)]
        self.reset()

    def reset(self):
        self.confusion = np.zeros((self.num_classes, self.num_classes), np.int64)

    def update(self, pred: np.ndarray, labels: np.ndarray):
        """Add a batch of predicted class indices and labels, both (N, H, W) integers."""
        pred, labels = np.asarray(pred), np.asarray(labels)
        if pred.shape != labels.shape:
            raise ValueError(f'prediction shape {pred.shape} != label shape {labels.shape}')
        keep = labels != self.ignore_index
        if ((labels[keep] < 0) | (labels[keep] >= self.num_classes)).any():
            raise ValueError(f'labels outside [0, {self.num_classes}) that are not ignore_index')
        idx = labels[keep].astype(np.int64) * self.num_classes + pred[keep].astype(np.int64)
        self.confusion += np.bincount(idx, minlength=self.num_classes ** 2).reshape(self.confusion.shape)

    def compute(self) -> dict:
        tp = np.diag(self.confusion).astype(float)
        union = self.confusion.sum(0) + self.confusion.sum(1) - tp
        with np.errstate(invalid='ignore', divide='ignore'):
            iou = np.where(union > 0, tp / union, np.nan)
        out = {f'iou_{name}': float(v) for name, v in zip(self.class_names, iou)}
        for subset_name, classes in self.class_subsets.items():
            values = iou[list(classes)]
            out[subset_name] = float(np.nanmean(values)) if np.isfinite(values).any() else float('nan')
        return out
