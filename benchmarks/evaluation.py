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

    ``class_subsets`` name the class lists whose mean IoU is reported (e.g. SYNTHIA -> Cityscapes
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
        # A class with no pixel in the labels nor the predictions has no IoU: None (JSON null, not NaN),
        # and it leaves the means.
        out = {f'iou_{name}': float(v) if np.isfinite(v) else None for name, v in zip(self.class_names, iou)}
        for subset_name, classes in self.class_subsets.items():
            values = iou[list(classes)]
            out[subset_name] = float(np.nanmean(values)) if np.isfinite(values).any() else None
        return out


def frechet_distance_from_moments(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, cov1) and N(mu2, cov2) (Dowson & Landau 1982; FID's formula,
    Heusel et al. 2017): ||mu1 - mu2||^2 + Tr(cov1 + cov2 - 2 (cov1 cov2)^(1/2))."""
    from scipy import linalg
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    cov1, cov2 = np.atleast_2d(cov1).astype(np.float64), np.atleast_2d(cov2).astype(np.float64)
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != (len(mu1), len(mu1)):
        raise ValueError(f'Fréchet distance: mismatched moments {mu1.shape}, {cov1.shape} vs {mu2.shape}, {cov2.shape}')
    root = linalg.sqrtm(cov1 @ cov2)
    if not np.isfinite(root).all():     # singular product (fewer samples than dims): regularise, as FID does
        eps = np.eye(len(mu1)) * 1e-6
        root = linalg.sqrtm((cov1 + eps) @ (cov2 + eps))
    root = np.real(root)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(root))


def frechet_distance(feats1: np.ndarray, feats2: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N1, D) and (N2, D)."""
    feats1, feats2 = np.asarray(feats1, np.float64), np.asarray(feats2, np.float64)
    if feats1.ndim != 2 or feats2.ndim != 2 or feats1.shape[1] != feats2.shape[1] or min(len(feats1), len(feats2)) < 2:
        raise ValueError(f'Fréchet distance needs two (N >= 2, D) feature sets of equal D, got {feats1.shape} and '
                         f'{feats2.shape}')
    return frechet_distance_from_moments(feats1.mean(0), np.cov(feats1, rowvar=False),
                                         feats2.mean(0), np.cov(feats2, rowvar=False))
