"""SYNTHIA-RAND-CITYSCAPES and Cityscapes on disk: file lists, label-id maps and the prepared
(resized, memory-mapped) arrays the runner trains on (the urban path of seed 002 Table 3; layouts in
datasets/README.md).

The real sets are thousands of 1280x760 / 2048x1024 images, so nothing here holds a set in memory:
``UrbanFiles`` is a list of (image, label, depth) paths; ``prepare`` decodes one file at a time,
resizes it to the profile's size and writes it into memory-mapped arrays on disk, once per file
list and size (``prepared_key``: paths, sizes and modification times), so a later run reads them
back page by page. Labels are the 19 Cityscapes train ids with 255 as ignore (the DAFormer
convention; mIoU-16 and mIoU-13 are subsets of them, ``evaluation``), mapped at the loader:

* SYNTHIA ``GT/LABELS/*.png`` are 16-bit 3-channel PNGs whose class id is the red channel (read
  unchanged: an 8-bit reader such as Pillow's would truncate them); DADA's prepared
  ``parsed_LABELS/*.png`` hold the SYNTHIA id in one channel. Ids map by ``SYNTHIA_TO_TRAIN``.
* Cityscapes ``*_gtFine_labelTrainIds.png`` (made by cityscapesscripts) are read as they are,
  else ``*_gtFine_labelIds.png`` (34 ids) map by ``CITYSCAPES_TO_TRAIN``.
* SYNTHIA ``Depth/Depth/*.png`` (or DADA's ``Depth/*.png``) are 16-bit depth d, stored as
  ``dada_depth`` (d + 1) / 65536, whose reciprocal is DADA's inverse-depth target 65536 / (d + 1)
  (``inverse_depth``), so the suite's DADA, which regresses 1 / depth, regresses exactly that.

Images and depth resize bilinearly / by nearest neighbour, labels by nearest neighbour.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

IGNORE = 255
CLASSES = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light', 'traffic sign',
           'vegetation', 'terrain', 'sky', 'person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle',
           'bicycle')
#: SYNTHIA class id -> Cityscapes train id (terrain, truck and train never occur in SYNTHIA).
SYNTHIA_TO_TRAIN = {3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 1: 10, 10: 11, 17: 12, 8: 13,
                    19: 15, 12: 17, 11: 18}
#: Cityscapes label id (gtFine labelIds) -> train id (cityscapesscripts' labels.py).
CITYSCAPES_TO_TRAIN = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
                       25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
SUFFIX_IMAGE, SUFFIX_IDS, SUFFIX_TRAIN_IDS = '_leftImg8bit.png', '_gtFine_labelIds.png', '_gtFine_labelTrainIds.png'


def lookup_table(mapping: dict) -> np.ndarray:
    """A 65,536-entry table: id -> train id, ``IGNORE`` for every id not in ``mapping``."""
    table = np.full(1 << 16, IGNORE, np.uint8)
    for source_id, train_id in mapping.items():
        table[source_id] = train_id
    return table


_SYNTHIA, _CITYSCAPES = lookup_table(SYNTHIA_TO_TRAIN), lookup_table(CITYSCAPES_TO_TRAIN)


@dataclass(frozen=True)
class UrbanFiles:
    """One set's files: images, labels (``label_kind`` says how to decode them), optional depth."""

    name: str
    images: tuple
    labels: tuple
    label_kind: str               # 'synthia_rgb16' | 'synthia_parsed' | 'cityscapes_ids' | 'train_ids'
    depth: tuple | None = None

    def __len__(self) -> int:
        return len(self.images)

    def head(self, count: int | None) -> 'UrbanFiles':
        """The first ``count`` files (all for None)."""
        if count is None or count >= len(self):
            return self
        return replace(self, images=self.images[:count], labels=self.labels[:count],
                       depth=None if self.depth is None else self.depth[:count])

    def __add__(self, other: 'UrbanFiles') -> 'UrbanFiles':
        """The files of both sets, in order (e.g. Cityscapes train then val)."""
        if other.label_kind != self.label_kind or (other.depth is None) != (self.depth is None):
            raise ValueError(f'{self.name} and {other.name} differ in label kind ({self.label_kind} vs '
                             f'{other.label_kind}) or in having depth: make their labels the same way')
        return UrbanFiles(f'{self.name}+{other.name}', self.images + other.images, self.labels + other.labels,
                          self.label_kind, None if self.depth is None else self.depth + other.depth)


def _read(path: Path, flags: int) -> np.ndarray:
    array = cv2.imread(str(path), flags)
    if array is None:
        raise OSError(f'cannot read image file {path}')
    return array


def read_label(path: Path, kind: str) -> np.ndarray:
    """(H, W) uint8 train ids of one label file."""
    raw = _read(path, cv2.IMREAD_UNCHANGED)
    if kind == 'synthia_rgb16':
        if raw.ndim != 3 or raw.dtype != np.uint16:
            raise ValueError(f'SYNTHIA label {path} is {raw.dtype} with shape {raw.shape}; expected the 16-bit '
                             '3-channel GT/LABELS PNG (class id in the red channel)')
        return _SYNTHIA[raw[..., 2]]          # OpenCV reads BGR: red is the last channel
    ids = raw if raw.ndim == 2 else raw[..., 2]
    if kind == 'synthia_parsed':
        return _SYNTHIA[ids]
    if kind == 'cityscapes_ids':
        return _CITYSCAPES[ids]
    if kind == 'train_ids':
        return ids.astype(np.uint8)
    raise KeyError(f'unknown label kind {kind!r}')


def read_depth(path: Path) -> np.ndarray:
    """(H, W) float32 raw 16-bit depth of a SYNTHIA depth PNG."""
    raw = _read(path, cv2.IMREAD_ANYDEPTH)
    if raw.dtype != np.uint16:
        raise ValueError(f'SYNTHIA depth {path} is {raw.dtype}; expected a 16-bit PNG')
    return raw.astype(np.float32)


def inverse_depth(depth: np.ndarray) -> np.ndarray:
    """DADA's depth target from a raw SYNTHIA depth value d: 65536 / (d + 1)."""
    return 65536.0 / (depth + 1.0)


def read_example(files: UrbanFiles, i: int, size: tuple[int, int]) -> dict:
    """File ``i`` resized to ``size`` = (H, W): image (H, W, 3) uint8 RGB, label (H, W) uint8 train
    ids and, when the set has depth, the raw 16-bit depth (H, W) as float32."""
    h, w = size
    image = cv2.cvtColor(_read(files.images[i], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    label = read_label(files.labels[i], files.label_kind)
    if image.shape[:2] != label.shape:
        raise ValueError(f'label {files.labels[i]} is {label.shape[1]}x{label.shape[0]} but image '
                         f'{files.images[i]} is {image.shape[1]}x{image.shape[0]}')
    out = {'image': cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR),
           'label': cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)}
    if files.depth is not None:
        out['depth'] = cv2.resize(read_depth(files.depth[i]), (w, h), interpolation=cv2.INTER_NEAREST)
    return out


#: Bump when ``read_example`` or ``prepare`` change what they write: prepared arrays are then re-made.
PREPARED_VERSION = 1


def prepared_key(files: UrbanFiles, size: tuple[int, int]) -> str:
    """What a prepared copy depends on: every file's path, size and modification time, the size and
    ``PREPARED_VERSION`` (a replaced or touched file re-prepares the set)."""
    digest = hashlib.sha256(f'{files.label_kind}{size}{PREPARED_VERSION}'.encode())
    for paths in (files.images, files.labels, files.depth or ()):
        for path in paths:
            stat = Path(path).stat()
            digest.update(f'{path}|{stat.st_size}|{stat.st_mtime_ns}\n'.encode())
    return digest.hexdigest()[:16]


def prepare(files: UrbanFiles, size: tuple[int, int], cache_dir) -> dict[str, np.ndarray]:
    """``images`` (N, H, W, 3) uint8, ``labels`` (N, H, W) uint8 and, with depth, ``dada_depth`` (N, H, W)
    float32, memory-mapped read-only from ``<cache_dir>/<name>_<H>x<W>_<prepared_key>/``; made on the
    first call one file at a time (a partial copy is never used: it is built in a folder of this
    process's own and renamed when complete; when another process has finished first, its copy is
    kept and this one dropped, so runs started together never write over each other)."""
    h, w = size
    folder = Path(cache_dir) / f'{files.name}_{h}x{w}_{prepared_key(files, size)}'
    names = ['images', 'labels'] + (['dada_depth'] if files.depth is not None else [])
    if not folder.is_dir():
        partial = folder.with_name(f'{folder.name}.partial-{os.getpid()}')
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        n = len(files)
        arrays = {'images': np.lib.format.open_memmap(partial / 'images.npy', 'w+', np.uint8, (n, h, w, 3)),
                  'labels': np.lib.format.open_memmap(partial / 'labels.npy', 'w+', np.uint8, (n, h, w))}
        if files.depth is not None:
            arrays['dada_depth'] = np.lib.format.open_memmap(partial / 'dada_depth.npy', 'w+', np.float32, (n, h, w))
        for i in range(n):
            example = read_example(files, i, size)
            arrays['images'][i], arrays['labels'][i] = example['image'], example['label']
            if files.depth is not None:
                arrays['dada_depth'][i] = 1.0 / inverse_depth(example['depth'])
        for array in arrays.values():
            array.flush()
        del arrays
        try:
            partial.rename(folder)
        except OSError:                # another process made the same copy meanwhile: keep that one
            if not folder.is_dir():
                raise
            shutil.rmtree(partial)
    return {name: np.load(folder / f'{name}.npy', mmap_mode='r') for name in names}


def _pngs(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.glob('*.png'))}


def synthia_files(root: Path) -> UrbanFiles:
    """SYNTHIA-RAND-CITYSCAPES under ``root``: ``RGB/`` with ``GT/LABELS/`` (as downloaded) or DADA's
    ``parsed_LABELS/``; depth from ``Depth/Depth/`` (as downloaded) or ``Depth/`` when present."""
    root = Path(root)
    layout = ('SYNTHIA-RAND-CITYSCAPES: <root>/RGB/*.png with <root>/GT/LABELS/*.png (16-bit, id in red) or '
              '<root>/parsed_LABELS/*.png, optional <root>/Depth/Depth/*.png')
    if not (root / 'RGB').is_dir():
        raise FileNotFoundError(f'{root / "RGB"} does not exist; expected {layout}')
    if (root / 'GT' / 'LABELS').is_dir():
        label_dir, kind = root / 'GT' / 'LABELS', 'synthia_rgb16'
    elif (root / 'parsed_LABELS').is_dir():
        label_dir, kind = root / 'parsed_LABELS', 'synthia_parsed'
    else:
        raise FileNotFoundError(f'no label folder under {root} (GT/LABELS or parsed_LABELS); expected {layout}')
    images, labels = _pngs(root / 'RGB'), _pngs(label_dir)
    if not images:
        raise FileNotFoundError(f'no PNG images in {root / "RGB"}; expected {layout}')
    missing = sorted(set(images) - set(labels))
    if missing:
        raise FileNotFoundError(f'{len(missing)} images of {root / "RGB"} have no label in {label_dir}, e.g. '
                                f'{images[missing[0]]} (expected {label_dir / (missing[0] + ".png")})')
    depth_dir = next((d for d in (root / 'Depth' / 'Depth', root / 'Depth') if d.is_dir() and any(d.glob('*.png'))), None)
    stems = sorted(images)
    depth = None
    if depth_dir is not None:
        found = _pngs(depth_dir)
        absent = [s for s in stems if s not in found]
        if absent:
            raise FileNotFoundError(f'{depth_dir} has no depth for {len(absent)} images, e.g. {images[absent[0]]}')
        depth = tuple(found[s] for s in stems)
    return UrbanFiles('synthia', tuple(images[s] for s in stems), tuple(labels[s] for s in stems), kind, depth)


def cityscapes_files(root: Path, split: str = 'train') -> UrbanFiles:
    """Cityscapes ``split`` under ``root``: ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` with
    ``gtFine/<split>/<city>/*_gtFine_labelTrainIds.png`` (preferred) or ``*_gtFine_labelIds.png``."""
    root = Path(root)
    image_dir = root / 'leftImg8bit' / split
    if not image_dir.is_dir():
        raise FileNotFoundError(f'{image_dir} does not exist; expected Cityscapes: <root>/leftImg8bit/{split}/<city>/'
                                f'*{SUFFIX_IMAGE} with <root>/gtFine/{split}/<city>/*{SUFFIX_IDS}')
    images = sorted(image_dir.glob(f'*/*{SUFFIX_IMAGE}'))
    if not images:
        raise FileNotFoundError(f'no *{SUFFIX_IMAGE} under {image_dir}/<city>/')
    labels, kinds = [], set()
    for image in images:
        base = root / 'gtFine' / split / image.parent.name / image.name[:-len(SUFFIX_IMAGE)]
        train_ids, ids = Path(str(base) + SUFFIX_TRAIN_IDS), Path(str(base) + SUFFIX_IDS)
        if train_ids.exists():
            labels.append(train_ids)
            kinds.add('train_ids')
        elif ids.exists():
            labels.append(ids)
            kinds.add('cityscapes_ids')
        else:
            raise FileNotFoundError(f'no label for {image}: expected {ids} (or {train_ids.name})')
    if len(kinds) > 1:
        raise ValueError(f'{root / "gtFine" / split} mixes *{SUFFIX_TRAIN_IDS} and *{SUFFIX_IDS} files: '
                         'make the train ids for every image (cityscapesscripts) or delete them')
    return UrbanFiles(f'cityscapes_{split}', tuple(images), tuple(labels), kinds.pop())
