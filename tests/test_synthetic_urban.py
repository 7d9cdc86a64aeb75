"""The synthetic urban twins: seeded, the 16 classes laid out as streets are, depth that recedes to the
horizon, and the appearance gap between a synthetic source and a dashcam target."""
import numpy as np
import pytest

from udabench.datasets import synthetic_urban as su


@pytest.fixture(scope='module')
def sets():
    return {d: su.generate(d, 24, 64, 128, seed=0) for d in su.DOMAINS}


def test_image_i_depends_only_on_seed_domain_and_index():
    a, b = su.generate('synth_synthia', 3, 32, 64, seed=1), su.generate('synth_synthia', 5, 32, 64, seed=1)
    assert all(np.array_equal(a[k], b[k][:3]) for k in a)
    assert not np.array_equal(a['images'], su.generate('synth_synthia', 3, 32, 64, seed=2)['images'])


def test_every_class_of_the_16_occurs_and_no_other(sets):
    for domain, g in sets.items():
        present = set(np.unique(g['labels']).tolist()) - {su.IGNORE}
        assert present == set(su.PRESENT), domain          # no terrain, truck or train, as SYNTHIA


def test_streets_are_laid_out_as_streets(sets):
    for domain, g in sets.items():
        rows = np.arange(64)[None, :, None]
        labels = g['labels']
        sky_row = (rows * (labels == su.SKY)).sum() / (labels == su.SKY).sum()
        road_row = (rows * (labels == su.ROAD)).sum() / (labels == su.ROAD).sum()
        assert sky_row < road_row, domain
        for labels_i, depth_i in zip(labels, g['depth']):  # the road recedes towards the horizon
            road_rows = [r for r in range(64) if (labels_i[r] == su.ROAD).any()]
            mean_depth = [depth_i[r][labels_i[r] == su.ROAD].mean() for r in road_rows]
            assert all(np.diff(mean_depth) <= 1e-3), domain
        assert np.all(g['depth'][labels == su.SKY] == su.SKY_DEPTH)


def test_only_the_target_has_an_ignored_ego_vehicle_and_a_fixed_viewpoint(sets):
    target, source = sets['synth_cityscapes']['labels'], sets['synth_synthia']['labels']
    assert (target[:, -2:] == su.IGNORE).all() and not (source == su.IGNORE).any()
    horizon = lambda labels: [np.flatnonzero((l == su.ROAD).any(1))[0] for l in labels]  # noqa: E731
    assert np.std(horizon(source)) > 3 * max(np.std(horizon(target)), 0.5)


def test_source_colours_are_saturated_the_target_muted(sets):
    def saturation(images):
        x = images.astype(float) / 255
        return float((x.max(-1) - x.min(-1)).mean())
    assert saturation(sets['synth_synthia']['images']) > 2 * saturation(sets['synth_cityscapes']['images'])
