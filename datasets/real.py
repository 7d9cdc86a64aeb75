"""Loaders for the real sets' on-disk layouts (documented in datasets/README.md).

Three layouts are recognised under a dataset folder:

* ``glss``: ``<split>/image/1/<name>`` with ``<split>/label/1/<name>`` (the official GLSS code,
  Keras ``flow_from_directory`` style); every ``<split>`` found is loaded.
* ``plain``: ``images/<name>`` with ``masks/<stem>.*``.
* ``gti_hand``: the upstream Hand Gesture tree
  ``near-infrared/<subject>/<session>/<gesture>/<sample>/frame_XXXX_{l,r}.png`` with the skin
  annotations mirrored under ``skin-masks/`` at the same relative paths.

An optional ``depth/`` folder beside ``images/`` (plain layout) holds per-image depth maps
(``<stem>.npy`` in metres, or 16-bit PNG in millimetres), which DADA needs on the source.

Checks (each a named error unless said): two files with one stem (``a.png`` + ``a.jpg``) and image
files in sub-folders of a flat folder (plain and GLSS layouts) name both paths; an empty set names
the folder and the layouts; masks must be lossless (PNG/BMP/TIFF) and single-valued per pixel
(grey, or RGB with equal channels); a mask with values other than 0/255 is read with the
"non-zero = skin" rule and warned about. 16-bit images are scaled to 8 bits (x / 257), not clipped.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .base import SegmentationSet

IMAGE_SUFFIXES = {'.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff'}
#: Masks must be stored losslessly: a JPEG mask has compression noise at every edge.
MASK_SUFFIXES = {'.png', '.bmp', '.tif', '.tiff'}
logger = logging.getLogger('udabench')

LAYOUT_HELP = (
    'expected one of: <root>/<split>/image/1/<name> + <root>/<split>/label/1/<name> (GLSS code); '
    '<root>/images/<name> + <root>/masks/<stem>.* (plain); '
    '<root>/near-infrared/<subject>/<session>/<gesture>/<sample>/frame_XXXX_{l,r}.png + '
    '<root>/skin-masks/<same relative path> (Hand Gesture upstream)')


def _by_stem(folder: Path, suffixes=IMAGE_SUFFIXES | {'.npy'}) -> dict[str, Path]:
    """Files of a flat folder by stem; a second file with a stem, or an image in a sub-folder, is an error."""
    out = {}
    for path in sorted(folder.iterdir()):
        if path.is_dir():
            nested = next((q for q in sorted(path.rglob('*')) if q.suffix.lower() in suffixes), None)
            if nested is not None:
                raise ValueError(f'{nested} is in a sub-folder of {folder}, which must be flat '
                                 f'(move or delete {path}); {LAYOUT_HELP}')
        elif path.suffix.lower() in suffixes:
            if path.stem in out:
                raise ValueError(f'two files with the stem {path.stem!r}: {out[path.stem]} and {path}; keep one')
            out[path.stem] = path
    return out


def _images_in(folder: Path) -> list[Path]:
    """The images of a flat folder (``_by_stem``'s checks), sorted."""
    return sorted(_by_stem(folder, IMAGE_SUFFIXES).values())


def find_pairs(root: Path) -> tuple[str, list[tuple[Path, Path, Path | None]]]:
    """Detect the layout under ``root``; return it and its (image, mask, depth-or-None) triples."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f'dataset folder {root} does not exist; {LAYOUT_HELP}')
    if (root / 'images').is_dir():
        if not (root / 'masks').is_dir():
            raise FileNotFoundError(f'{root / "masks"} is missing beside {root / "images"}; {LAYOUT_HELP}')
        masks = _by_stem(root / 'masks')
        depth = _by_stem(root / 'depth') if (root / 'depth').is_dir() else {}
        pairs = []
        for image in _images_in(root / 'images'):
            if image.stem not in masks:
                raise FileNotFoundError(f'no mask for {image} in {root / "masks"} (expected {image.stem}.*)')
            pairs.append((image, masks[image.stem], depth.get(image.stem)))
        if not pairs:
            raise FileNotFoundError(f'no images in {root / "images"}; {LAYOUT_HELP}')
        return 'plain', pairs
    if (root / 'near-infrared').is_dir():
        pairs = []
        for image in sorted(p for p in (root / 'near-infrared').rglob('*') if p.suffix.lower() in IMAGE_SUFFIXES):
            mask = root / 'skin-masks' / image.relative_to(root / 'near-infrared')
            if mask.exists():   # only the annotated frames form the set
                pairs.append((image, mask, None))
        if not pairs:
            raise FileNotFoundError(f'no annotated frame under {root / "near-infrared"}: '
                                    f'masks must mirror it under {root / "skin-masks"}')
        return 'gti_hand', pairs
    split_dirs = sorted(p.parent.parent for p in root.glob('*/image/1'))
    if split_dirs:
        pairs = []
        for split in split_dirs:
            for image in _images_in(split / 'image' / '1'):
                mask = split / 'label' / '1' / image.name
                if not mask.exists():
                    raise FileNotFoundError(f'no mask {mask} for {image}; {LAYOUT_HELP}')
                pairs.append((image, mask, None))
        if not pairs:
            raise FileNotFoundError(f'no images under {", ".join(str(s / "image" / "1") for s in split_dirs)}; '
                                    f'{LAYOUT_HELP}')
        return 'glss', pairs
    raise FileNotFoundError(f'no known layout under {root}; {LAYOUT_HELP}')


def _read(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            im.load()
            return im
    except (UnidentifiedImageError, OSError) as err:
        raise OSError(f'cannot read image file {path}: {err}') from err


def _to_grey(image: Image.Image, band: str) -> Image.Image:
    """The source is the Red channel of an RGB image; NIR frames are stored grey or as RGB copies.
    16-bit grey images are scaled to 8 bits (x / 257), not clipped at 255."""
    if image.mode.startswith('I'):   # I, I;16, I;16B: 16-bit PNG/TIFF
        values = np.asarray(image, dtype=np.float64)
        return Image.fromarray(np.clip(np.round(values / 257.0), 0, 255).astype(np.uint8))
    if image.mode in ('L', 'F'):
        return image.convert('L')
    rgb = image.convert('RGB')
    return rgb.getchannel('R') if band == 'visible_red' else rgb.convert('L')


def _read_depth(path: Path, size: int) -> np.ndarray:
    if path.suffix == '.npy':
        depth = np.load(path).astype(np.float32)
    else:
        depth = np.asarray(_read(path), dtype=np.float32) / 1000.0
    return np.asarray(Image.fromarray(depth).resize((size, size), Image.BILINEAR))


def _mask_values(mask: Image.Image, path: Path) -> np.ndarray:
    """One value per pixel of a lossless mask file, or an error naming it."""
    if path.suffix.lower() not in MASK_SUFFIXES:
        raise ValueError(f'mask {path} is {path.suffix} (lossy); masks must be lossless: '
                         f'{", ".join(sorted(MASK_SUFFIXES))}')
    if mask.mode in ('RGB', 'RGBA'):
        rgb = np.asarray(mask.convert('RGB'))
        if not ((rgb[..., 0] == rgb[..., 1]) & (rgb[..., 1] == rgb[..., 2])).all():
            raise ValueError(f'mask {path} is a colour image with different channels; a mask needs one value '
                             'per pixel (grey, 0 = background, 255 = skin)')
        return rgb[..., 0]
    if mask.mode == 'LA':
        mask = mask.getchannel('L')
    return np.asarray(mask.convert('L') if mask.mode in ('1', 'P') else mask)


def load_folder(name: str, root: Path, size: int, band: str) -> SegmentationSet:
    """Read every annotated image under ``root``, resized to ``size`` x ``size``."""
    layout, pairs = find_pairs(root)
    images, masks, depths, not_binary = [], [], [], []
    for image_path, mask_path, depth_path in pairs:
        image, mask = _read(image_path), _read(mask_path)
        if image.size != mask.size:
            raise ValueError(f'mask {mask_path} is {mask.size[0]}x{mask.size[1]} but image {image_path} '
                             f'is {image.size[0]}x{image.size[1]}; a mask must match its image')
        images.append(np.asarray(_to_grey(image, band).resize((size, size), Image.BILINEAR)))
        values = _mask_values(mask, mask_path)
        if not np.isin(values, (0, 255)).all():
            not_binary.append(mask_path)
        skin = np.asarray(Image.fromarray(values > 0).resize((size, size), Image.NEAREST))   # non-zero = skin
        masks.append(skin.astype(np.uint8))
        if depth_path is not None:
            depths.append(_read_depth(depth_path, size))
    if not_binary:
        logger.warning('%d of %d masks under %s hold values other than 0 and 255 (e.g. %s): any non-zero '
                       'pixel is taken as skin', len(not_binary), len(pairs), root, not_binary[0])
    if depths and len(depths) != len(images):
        raise FileNotFoundError(f'{root / "depth"} holds depth for {len(depths)} of {len(images)} images')
    return SegmentationSet(name=name, images=np.stack(images), masks=np.stack(masks), data_source='real',
                           depth=np.stack(depths) if depths else None,
                           description=f'{root} ({layout} layout, {len(images)} images)')
