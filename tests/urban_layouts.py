"""Fixture writers for the real urban layouts (datasets/README.md): SYNTHIA-RAND-CITYSCAPES with its
16-bit labels (class id in the red channel) or DADA's parsed labels, and Cityscapes' gtFine labelIds."""
import cv2
import numpy as np


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def write_synthia(root, ids: np.ndarray, name='0000001', parsed=False, red=200, depth=1234):
    """One SYNTHIA image whose red channel is ``red``, labels ``ids`` (SYNTHIA ids), depth ``depth``."""
    h, w = ids.shape
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 0] = red                                      # red in RGB order
    write_png(root / 'RGB' / f'{name}.png', rgb[..., ::-1])   # OpenCV writes BGR
    if parsed:
        write_png(root / 'parsed_LABELS' / f'{name}.png', ids.astype(np.uint8))
    else:
        label = np.zeros((h, w, 3), np.uint16)
        label[..., 2] = ids                                # BGR: red last = the class id
        label[..., 1] = 1000 + ids                         # instance ids in green: must be ignored
        write_png(root / 'GT' / 'LABELS' / f'{name}.png', label)
    write_png(root / 'Depth' / 'Depth' / f'{name}.png', np.full((h, w), depth, np.uint16))


def write_cityscapes(root, split: str, name: str, ids: np.ndarray, city='aachen', value=0):
    """One Cityscapes image of grey level ``value`` with gtFine labelIds ``ids``."""
    stem = f'{city}_{name}'
    write_png(root / 'leftImg8bit' / split / city / f'{stem}_leftImg8bit.png', np.full((*ids.shape, 3), value, np.uint8))
    write_png(root / 'gtFine' / split / city / f'{stem}_gtFine_labelIds.png', ids.astype(np.uint8))
