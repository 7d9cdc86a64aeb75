"""The in-memory segmentation set every loader returns, and its splits."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np


@dataclass
class SegmentationSet:
    """Images (N, H, W) greyscale or (N, H, W, 3) RGB, uint8; masks (N, H, W) uint8: 0/1 skin, or
    class ids with 255 ignored (the urban sets); optional depth (N, H, W) in metres (real SYNTHIA: in
    DADA's units, ``urban.prepare``). Arrays may be memory-mapped (the prepared real urban sets).
    ``test_index``: a set with an official test split (Cityscapes val) names its images; the seeded
    80/20 split of ``split_indices`` is then that split."""

    name: str
    images: np.ndarray
    masks: np.ndarray
    data_source: str                   # 'real' or 'synthetic'
    depth: np.ndarray | None = None
    description: str = ''
    test_index: np.ndarray | None = None

    def __post_init__(self):
        if self.images.shape[:3] != self.masks.shape or self.images.ndim not in (3, 4):
            raise ValueError(f'{self.name}: images {self.images.shape} and masks {self.masks.shape} differ')
        if self.depth is not None and self.depth.shape != self.masks.shape:
            raise ValueError(f'{self.name}: depth {self.depth.shape} and images {self.images.shape} differ')
        if self.test_index is not None and not (len(self.test_index) and np.all(self.test_index >= 0)
                                                and np.all(self.test_index < len(self.images))):
            raise ValueError(f'{self.name}: test_index must name 1 to {len(self.images)} of its images')

    @cached_property
    def content_hash(self) -> str:
        """SHA-256 of the images, masks and depth (shape, dtype and bytes), computed once per set."""
        digest = hashlib.sha256()
        for array in (self.images, self.masks, self.depth):
            if array is not None:
                array = np.ascontiguousarray(array)
                digest.update(f'{array.shape}{array.dtype}'.encode())
                digest.update(array.data)
        return digest.hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index) -> 'SegmentationSet':
        """The images ``index`` (in memory), without a test split of their own."""
        index = np.asarray(index)
        return replace(self, images=self.images[index], masks=self.masks[index],
                       depth=None if self.depth is None else self.depth[index], test_index=None)

    def split_indices(self, train_fraction: float = 0.8, seed: int = 0):
        """Sorted indices of a seeded (train, test) split, e.g. seed 002 Table 1's 80/20 split; the
        set's own test split when it has one (``test_index``)."""
        if self.test_index is not None:
            test = np.sort(np.asarray(self.test_index))
            return np.setdiff1d(np.arange(len(self)), test), test
        order = np.random.default_rng(seed).permutation(len(self))
        cut = int(round(train_fraction * len(self)))
        return np.sort(order[:cut]), np.sort(order[cut:])

    def split(self, train_fraction: float = 0.8, seed: int = 0):
        """The (train, test) subsets of ``split_indices``."""
        train, test = self.split_indices(train_fraction, seed)
        return self.subset(train), self.subset(test)

    @property
    def channels(self) -> int:
        return 1 if self.images.ndim == 3 else self.images.shape[-1]

    def normalised_images(self) -> np.ndarray:
        """Images as float32 (N, C, H, W) in [-1, 1], the scaling of the official GLSS code."""
        scaled = self.images.astype(np.float32) / 127.5 - 1.0
        return scaled[:, None] if self.images.ndim == 3 else np.ascontiguousarray(scaled.transpose(0, 3, 1, 2))
