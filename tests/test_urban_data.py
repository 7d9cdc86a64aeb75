"""The urban loaders on fixtures written in the real layouts: SYNTHIA's 16-bit 3-channel labels with
the id in the red channel, DADA's parsed labels, Cityscapes' labelIds / labelTrainIds."""
import cv2
import numpy as np
import pytest
from urban_layouts import write_png, write_synthia

from udabench.datasets.urban import (CITYSCAPES_TO_TRAIN, IGNORE, SYNTHIA_TO_TRAIN, cityscapes_files, inverse_depth,
                                     read_example, synthia_files)


@pytest.mark.parametrize('parsed', [False, True])
def test_synthia_ids_map_to_the_cityscapes_train_ids(tmp_path, parsed):
    ids = np.array([list(SYNTHIA_TO_TRAIN) + [0, 13, 22, 20]], np.uint16).repeat(2, 0)
    write_synthia(tmp_path, ids, parsed=parsed)
    files = synthia_files(tmp_path)
    assert files.label_kind == ('synthia_parsed' if parsed else 'synthia_rgb16') and len(files) == 1
    example = read_example(files, 0, size=ids.shape)
    expected = [SYNTHIA_TO_TRAIN[i] for i in SYNTHIA_TO_TRAIN] + [IGNORE] * 4
    assert example['label'][0].tolist() == expected
    assert example['image'].shape == (*ids.shape, 3) and example['image'].dtype == np.uint8
    assert np.all(example['image'][..., 0] == 200) and np.all(example['image'][..., 1:] == 0)   # RGB order
    assert np.all(example['depth'] == 1234.0) and np.allclose(inverse_depth(example['depth']), 65536 / 1235)


def test_a_16_bit_label_read_as_8_bit_would_lose_the_ids(tmp_path):
    """The ids sit in the low byte of 16-bit values: the loader must read them unchanged."""
    ids = np.full((4, 4), 3, np.uint16)
    write_synthia(tmp_path, ids)
    assert read_example(synthia_files(tmp_path), 0, (4, 4))['label'].max() == 0     # road
    eight_bit = cv2.imread(str(tmp_path / 'GT' / 'LABELS' / '0000001.png'), cv2.IMREAD_COLOR)
    assert eight_bit[..., 2].max() == 0                     # an 8-bit read scales by 1/256: every id is 0


def test_labels_resize_by_nearest_neighbour_only(tmp_path):
    ids = np.zeros((8, 8), np.uint16)
    ids[:, 4:] = 8                                           # car: train id 13, beside road 0
    ids[:, :4] = 3
    write_synthia(tmp_path, ids)
    labels = read_example(synthia_files(tmp_path), 0, (4, 6))['label']
    assert set(np.unique(labels)) == {0, 13}


def test_cityscapes_label_ids_map_and_train_ids_are_preferred(tmp_path):
    ids = np.array([list(CITYSCAPES_TO_TRAIN) + [0, 1, 6, 34]], np.uint8)
    city = 'aachen'
    write_png(tmp_path / 'leftImg8bit' / 'val' / city / f'{city}_000000_000019_leftImg8bit.png', np.zeros((*ids.shape, 3), np.uint8))
    write_png(tmp_path / 'gtFine' / 'val' / city / f'{city}_000000_000019_gtFine_labelIds.png', ids)
    files = cityscapes_files(tmp_path, 'val')
    assert files.label_kind == 'cityscapes_ids' and files.depth is None
    assert read_example(files, 0, ids.shape)['label'].tolist()[0] == list(range(19)) + [IGNORE] * 4
    write_png(tmp_path / 'gtFine' / 'val' / city / f'{city}_000000_000019_gtFine_labelTrainIds.png', np.full(ids.shape, 7, np.uint8))
    files = cityscapes_files(tmp_path, 'val')
    assert files.label_kind == 'train_ids' and np.all(read_example(files, 0, ids.shape)['label'] == 7)


@pytest.mark.parametrize('case, message', [
    ('no_rgb', 'RGB'), ('no_labels', 'GT/LABELS or parsed_LABELS'), ('missing_label', 'have no label'),
    ('eight_bit_label', '16-bit 3-channel'), ('no_city', 'leftImg8bit'), ('no_cityscapes_label', 'no label for'),
])
def test_bad_urban_layouts_are_named(tmp_path, case, message):
    if case == 'no_rgb':
        call = lambda: synthia_files(tmp_path)  # noqa: E731
    elif case == 'no_labels':
        write_png(tmp_path / 'RGB' / 'a.png', np.zeros((2, 2, 3), np.uint8))
        call = lambda: synthia_files(tmp_path)  # noqa: E731
    elif case == 'missing_label':
        write_synthia(tmp_path, np.zeros((2, 2), np.uint16))
        write_png(tmp_path / 'RGB' / 'b.png', np.zeros((2, 2, 3), np.uint8))
        call = lambda: synthia_files(tmp_path)  # noqa: E731
    elif case == 'eight_bit_label':
        write_synthia(tmp_path, np.zeros((2, 2), np.uint16))
        write_png(tmp_path / 'GT' / 'LABELS' / '0000001.png', np.zeros((2, 2, 3), np.uint8))
        call = lambda: read_example(synthia_files(tmp_path), 0, (2, 2))  # noqa: E731
    elif case == 'no_city':
        call = lambda: cityscapes_files(tmp_path, 'train')  # noqa: E731
    else:
        write_png(tmp_path / 'leftImg8bit' / 'train' / 'x' / 'x_1_1_leftImg8bit.png', np.zeros((2, 2, 3), np.uint8))
        call = lambda: cityscapes_files(tmp_path, 'train')  # noqa: E731
    with pytest.raises((FileNotFoundError, ValueError), match=message):
        call()
