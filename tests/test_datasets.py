import numpy as np
import pytest
from PIL import Image

from udabench import datasets
from udabench.datasets import synthetic
from udabench.datasets.base import RowView, SegmentationSet, normalise
from udabench.datasets.real import load_folder
from udabench.registry import DATASETS, lookup


def test_synthetic_is_seeded_and_prefix_stable():
    a = synthetic.generate('synth_hand', 3, 32, seed=0)
    b = synthetic.generate('synth_hand', 5, 32, seed=0)
    assert (a['images'] == b['images'][:3]).all() and (a['masks'] == b['masks'][:3]).all()
    c = synthetic.generate('synth_hand', 3, 32, seed=1)
    assert not (a['images'] == c['images']).all()


@pytest.mark.parametrize('domain', sorted(synthetic.DOMAINS))
def test_synthetic_domains_have_skin_depth_and_range(domain):
    out = synthetic.generate(domain, 6, 64, seed=0)
    assert out['images'].shape == out['masks'].shape == out['depth'].shape == (6, 64, 64)
    assert out['masks'].max() == 1 and 0 < out['masks'].mean() < 0.6
    assert (out['depth'] > 0).all()


def test_nir_skin_is_brighter_and_smoother_than_visible_skin():
    vis = synthetic.generate('synth_compaq', 30, 64, seed=0)
    nir = synthetic.generate('synth_snv', 30, 64, seed=0)

    def skin_stats(d):
        vals = d['images'][d['masks'] == 1].astype(float)
        return vals.mean()
    assert skin_stats(nir) > skin_stats(vis)


def test_gestures_are_at_least_ten():
    assert len(synthetic.GESTURES) >= 10


def test_synthetic_loader_caches(tmp_path):
    load = lookup(DATASETS, 'synth_snv')
    first = load(size=32, count=4, cache_dir=tmp_path)
    assert len(list(tmp_path.glob('*.npz'))) == 1
    again = load(size=32, count=4, cache_dir=tmp_path)
    assert (first.images == again.images).all() and first.data_source == 'synthetic'


def _write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _rgb(h=20, w=30, red=200):
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = red
    img[..., 1] = 10
    return img


def _mask(h=20, w=30):
    m = np.zeros((h, w), np.uint8)
    m[5:10, 5:20] = 255
    return m


def test_glss_layout_reads_red_channel_and_masks(tmp_path):
    for split in ('train', 'test'):
        _write(tmp_path / split / 'image' / '1' / 'a.png', _rgb())
        _write(tmp_path / split / 'label' / '1' / 'a.png', _mask())
    data = load_folder('compaq', tmp_path, 16, 'visible_red')
    assert data.images.shape == (2, 16, 16) and data.data_source == 'real'
    assert abs(int(data.images[0, 0, 0]) - 200) <= 1          # the Red channel, not luminance
    assert 0 < data.masks.mean() < 1 and set(np.unique(data.masks)) <= {0, 1}


def test_plain_layout_with_depth(tmp_path):
    _write(tmp_path / 'images' / 'x.jpg', _rgb())
    _write(tmp_path / 'masks' / 'x.png', _mask())
    (tmp_path / 'depth').mkdir()
    np.save(tmp_path / 'depth' / 'x.npy', np.full((20, 30), 2.5, np.float32))
    data = load_folder('compaq', tmp_path, 8, 'visible_red')
    assert data.depth is not None and np.allclose(data.depth, 2.5)


def test_gti_hand_upstream_layout(tmp_path):
    rel = 'P1/train_pose/G01/s1/frame_0001_l.png'
    _write(tmp_path / 'near-infrared' / rel, np.full((20, 30), 90, np.uint8))
    _write(tmp_path / 'near-infrared' / 'P1/train_pose/G01/s1/frame_0002_l.png', np.zeros((20, 30), np.uint8))
    _write(tmp_path / 'skin-masks' / rel, _mask())
    data = load_folder('hand', tmp_path, 8, 'nir')
    assert len(data) == 1          # only annotated frames


def test_bad_data_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        load_folder('snv', tmp_path / 'missing', 8, 'nir')
    _write(tmp_path / 'images' / 'a.png', _rgb())
    _write(tmp_path / 'masks' / 'a.png', _mask(10, 10))
    with pytest.raises(ValueError, match=r'masks/a.png.*must match'):
        load_folder('snv', tmp_path, 8, 'nir')
    (tmp_path / 'images' / 'a.png').write_bytes(b'not an image')
    with pytest.raises(OSError, match=r'images/a.png'):
        load_folder('snv', tmp_path, 8, 'nir')
    (tmp_path / 'other').mkdir()
    with pytest.raises(FileNotFoundError, match='no known layout'):
        load_folder('snv', tmp_path / 'other', 8, 'nir')


def test_resolve_prefers_real_data_when_present(tmp_path):
    assert datasets.resolve('hand', tmp_path) == ('synth_hand', 'synthetic')
    (tmp_path / 'hand').mkdir()
    assert datasets.resolve('hand', tmp_path) == ('hand', 'real')
    with pytest.raises(KeyError, match='expected one of'):
        datasets.resolve('mars', tmp_path)


def test_split_is_seeded_and_disjoint():
    arr = synthetic.generate('synth_hand', 10, 16, 0)
    s = SegmentationSet('x', arr['images'], arr['masks'], 'synthetic')
    train, test = s.split(0.8, seed=0)
    assert len(train) == 8 and len(test) == 2
    assert not any((t == train.images).all((1, 2)).any() for t in test.images)


def _as_torch_reads_it(array):
    """What a training step makes of ``array`` (``methods.base.to_tensor``): values and strides."""
    import torch
    tensor = torch.as_tensor(np.ascontiguousarray(array), dtype=torch.float32)
    return tensor, tensor.stride()


@pytest.mark.parametrize('shape', [(9, 6, 5), (9, 6, 5, 3)], ids=['grey', 'rgb'])
def test_a_row_view_reads_what_the_whole_set_expression_gives_in_values_and_strides(shape):
    """Torch reads a size-1 channel axis of stride 1 as channels-last, whose kernels round
    differently: rows read a batch at a time must be laid out as rows selected from the whole
    normalised set, or every result's last digits change."""
    images = np.random.default_rng(0).integers(0, 256, shape).astype(np.uint8)
    keep, batch, rows = np.array([7, 1, 3, 8, 0]), np.array([4, 0, 2]), slice(1, 4)
    transforms = {'normalise': normalise, 'sigmoid targets, depth': lambda m: m[:, None].astype(np.float32),   # methods.base
                  'class ids': lambda m: m.astype(np.float32)}
    for name, transform in transforms.items():
        whole, view = transform(images), RowView(images, transform)
        for expected, got in ((whole[rows], view[rows]), (whole[batch], view[batch]), (whole[keep][rows], view.take(keep)[rows]),
                              (whole[keep][batch], view.take(keep)[batch]), (whole, np.asarray(view))):
            (t_expected, s_expected), (t_got, s_got) = _as_torch_reads_it(expected), _as_torch_reads_it(got)
            assert s_got == s_expected, name
            assert t_got.equal(t_expected), name
        subset = RowView(images, transform, keep)                        # the rows keep, then transformed
        sub, pair = np.array([3, 0, 4]), np.array([2, 0])
        for expected, got in ((transform(images[keep])[batch], subset[batch]),
                              (transform(images[keep])[sub][pair], subset.take(sub)[pair])):
            (t_expected, s_expected), (t_got, s_got) = _as_torch_reads_it(expected), _as_torch_reads_it(got)
            assert s_got == s_expected and t_got.equal(t_expected), name
    assert RowView(images, normalise).shape == normalise(images).shape
    assert [len(b) for b in RowView(images).batches(4)] == [4, 4, 1]


def test_the_normalised_images_are_read_from_disk_a_batch_at_a_time(tmp_path):
    np.save(tmp_path / 'images.npy', np.random.default_rng(0).integers(0, 256, (6, 4, 4, 3)).astype(np.uint8))
    on_disk = np.load(tmp_path / 'images.npy', mmap_mode='r')
    data = SegmentationSet('set', on_disk, np.zeros((6, 4, 4), np.uint8), 'real')
    view = data.normalised_images()
    assert isinstance(view, RowView) and view.array is on_disk       # nothing read yet
    assert np.array_equal(view[[2, 5]], normalise(np.asarray(on_disk))[[2, 5]])
