"""The segmentation set every loader returns, its splits, and ``RowView``: the rows of a set's
arrays read and transformed a batch at a time."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np


#: Rows read at once where the batch is not a training batch (predicting, translating, hashing).
READ_BATCH = 64


class RowView:
    """The rows of ``array`` (in memory or memory-mapped) through ``transform``, read and transformed
    only when asked for, so that a prepared real set on disk is read a batch at a time and never held
    whole as floats. ``view[rows]`` (a slice or integer indices) equals ``transform(array)[rows]``,
    and on a ``take(index)`` view ``transform(array)[index][rows]``, in values and in strides: each
    numpy row selection lays its copy out by the strides it selects from (so two selections differ
    from one), and torch reads a size-1 channel axis of stride 1 as channels-last, whose kernels
    round differently. ``transform`` maps a block of rows to a block of rows, row by row."""

    def __init__(self, array: np.ndarray, transform=None, index: np.ndarray | None = None, selections: int = 0):
        self.array, self.transform = array, transform or (lambda rows: rows)
        self.index = np.arange(len(array)) if index is None else np.asarray(index)
        self.selections = selections         # integer-index selections the whole-set expression has made

    def __len__(self) -> int:
        return len(self.index)

    @cached_property
    def shape(self) -> tuple:
        return (len(self), *self.transform(self.array[:1]).shape[1:])

    def __getitem__(self, rows) -> np.ndarray:
        block = self.transform(self.array[self.index[rows]])
        for _ in range(self.selections + (not isinstance(rows, slice))):
            block = block[np.arange(len(block))]                 # lay it out as that many selections
        return block

    def take(self, rows) -> 'RowView':
        """The view of the rows ``rows`` (integer indices), still unread."""
        return RowView(self.array, self.transform, self.index[np.asarray(rows)], self.selections + 1)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype)

    def batches(self, size: int | None = None):
        """The rows in order, ``size`` (``READ_BATCH``) at a time (the last batch may be shorter)."""
        size = size or READ_BATCH
        for start in range(0, len(self), size):
            yield self[start:start + size]


def normalise(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, H, W) or (N, H, W, 3) as float32 (N, C, H, W) in [-1, 1], the scaling of the
    official GLSS code."""
    scaled = images.astype(np.float32) / 127.5 - 1.0
    return scaled[:, None] if images.ndim == 3 else np.ascontiguousarray(scaled.transpose(0, 3, 1, 2))


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

    def normalised_images(self, index: np.ndarray | None = None) -> RowView:
        """Images (all, or those ``index``: ``subset(index).normalised_images()``) as float32
        (N, C, H, W) in [-1, 1] (``normalise``), read a batch of rows at a time."""
        return RowView(self.images, normalise, index)
