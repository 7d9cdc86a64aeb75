"""Depth distribution (seed 004, Wu & Liu NeurIPS 2022): the per-class GMMs and their density
targets, the source/target balance terms' wiring, the spatial-prior pseudo-labels (Algorithm 1) by
hand, the discriminator's input, the one-group optimiser, and a run end to end."""
import math

import numpy as np
import pytest
import torch

from udabench.methods.base import IGNORE
from udabench.methods.depth_distribution import (OFFICIAL_PIXELS, ClassDepthDistributions, DepthDistribution,
                                                 fit_diagonal_gmm, mean_region_sizes, region_thresholds,
                                                 spatial_prior_labels)


def test_em_finds_two_separated_clusters():
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal([0, 0, 0], 0.1, (300, 3)), rng.normal([5, 5, 5], 0.2, (100, 3))])
    weights, means, variances = fit_diagonal_gmm(points, 2, seed=0)
    order = np.argsort(means[:, 0])
    assert np.allclose(weights[order], [0.75, 0.25], atol=0.01)
    assert np.allclose(means[order], [[0, 0, 0], [5, 5, 5]], atol=0.1)
    assert np.allclose(np.sqrt(variances[order]), [[0.1] * 3, [0.2] * 3], atol=0.03)


def _distributions():
    """Class 0: one Gaussian at (x, y, z) = (0.25, 0.5, 2) with sd 0.1; class 1 absent; scale 1."""
    d = ClassDepthDistributions(num_classes=2, components=1)
    d.weights[0, 0] = 1.0
    d.means[0, 0] = torch.tensor([0.25, 0.5, 2.0])
    d.variances[0, 0] = 0.01
    return d


def test_density_target_by_hand():
    d = _distributions()
    classes = torch.tensor([[[0, 0, IGNORE, 1]]])                            # (1, 1, 4): x = 1/8, 3/8, 5/8, 7/8
    depth = torch.tensor([[[2.0, 2.0, 2.0, 2.0]]])
    out = d.target(classes, depth)[0, 0, 0]
    peak = 1 / ((2 * math.pi * 0.01) ** 1.5)
    p = peak * math.exp(-0.5 * (0.125 ** 2) / 0.01)                        # |x - 0.25| = 1/8, y and z on the mean
    assert out[0].item() == pytest.approx(1 - math.exp(-p), rel=1e-4)
    assert out[1].item() == pytest.approx(out[0].item(), rel=1e-5)          # symmetric about x = 0.25
    assert out[2].item() == 0.0 and out[3].item() == 0.0                    # ignored; a class the source lacks
    d.scale.fill_(1e-3)
    assert d.target(classes, depth)[0, 0, 0, 0].item() == pytest.approx(1 - math.exp(-1e-3 * p), rel=1e-4)
    assert d.target(classes, -depth)[0, 0, 0, 0].item() == 0.0              # inverse depth <= 0: 0


def test_fit_maps_the_median_source_pixel_to_095():
    rng = np.random.default_rng(1)
    masks = rng.integers(0, 2, (4, 8, 8))
    inverse_depth = rng.random((4, 8, 8)) + 0.5
    d = ClassDepthDistributions(2, 2)
    d.fit(masks, inverse_depth, seed=0)
    values = torch.cat([d.target(torch.as_tensor(masks[i:i + 1]), torch.as_tensor(inverse_depth[i:i + 1],
                                                                                dtype=torch.float32)).flatten()
                        for i in range(4)])
    assert values.median().item() == pytest.approx(0.95, abs=0.02)


def test_region_sizes_and_thresholds_by_hand():
    labels = np.array([[[1, 1, 0, 0],
                        [0, 0, 0, 1],
                        [1, 0, 0, 1]]])
    sizes = mean_region_sizes(labels, 3)
    # class 1: regions {(0,0),(0,1)}: 2, {(1,3),(2,3)}: 2, {(2,0)}: 1 -> 5/3; class 0: one 8-connected region of 7
    assert sizes[0] == 7 and sizes[1] == pytest.approx(5 / 3) and np.isnan(sizes[2])
    thresholds = region_thresholds(np.array([10.0, 30.0, np.nan]), OFFICIAL_PIXELS)
    assert thresholds.tolist() == [50.0, 5000.0, 5000.0]                   # official bases; absent: the largest
    assert region_thresholds(np.array([10.0, 30.0]), OFFICIAL_PIXELS // 2).tolist() == [25.0, 2500.0]


def test_spatial_prior_keeps_large_confident_regions_only():
    probs = np.full((1, 2, 4, 5), 0.05)
    probs[0, 1] = 0.95                                                     # class 1 everywhere, confident
    probs[0, 0] = 0.05
    probs[0, :, 0, 0] = [0.95, 0.05]                                       # a lone confident class-0 pixel
    probs[0, :, 3, 4] = [0.3, 0.7]                                         # class 1 but unsure
    labels = spatial_prior_labels(probs, thresholds=np.array([2.0, 3.0]))
    assert labels[0, 0, 0] == -1                                           # region of 1 < 2
    assert labels[0, 3, 4] == -1                                           # confidence 0.7 < 0.9
    assert (labels[0][labels[0] >= 0] == 1).all() and (labels[0] == 1).sum() == 18
    diagonal = np.full((1, 2, 3, 3), 0.05)
    diagonal[0, 1] = 0.95
    diagonal[0, :, [0, 1, 2], [0, 1, 2]] = [0.95, 0.05]                    # class 0 on the diagonal: 8-connected
    assert (spatial_prior_labels(diagonal, np.array([3.0, 99.0]))[0] == 0).sum() == 3


class _Recorder:
    """Stands in for ClassDepthDistributions: records the classes and depth each call gets."""

    def __init__(self):
        self.calls = []

    def target(self, classes, depth):
        self.calls.append((classes.clone(), depth.clone()))
        return torch.zeros(classes.shape[0], 1, *classes.shape[-2:])


def _method():
    m = DepthDistribution(stop_iters=3)
    m.seg_loss = lambda logits, target, valid=None: logits.sum() * 0
    m.distributions = _Recorder()
    return m


def _logits(classes):
    ids = torch.tensor(classes)
    return (torch.stack([(ids == 0).float(), (ids == 1).float()])[None, :, None] * 4 - 2)   # (1, 2, 1, W)


def test_source_density_is_read_where_the_prediction_is_right_with_the_true_depth():
    m = _method()
    out = {'main': _logits([0, 1, 1, 0]), 'depth': torch.zeros(1, 1, 1, 4, requires_grad=True),
           'density': torch.zeros(1, 1, 1, 4, requires_grad=True)}
    batch = {'ys': torch.tensor([[[0, 1, 0, 255]]]), 'ds': torch.full((1, 1, 1, 4), 4.0)}
    m.source_loss(out, batch)
    classes, depth = m.distributions.calls[0]
    assert classes.tolist() == [[[0, 1, IGNORE, IGNORE]]]                  # wrong at 2, ignored at 3
    assert torch.allclose(depth, torch.full((1, 1, 4), 0.25))              # inverse of the true 4 m


def test_target_density_uses_the_predicted_class_and_detached_depth():
    m = DepthDistribution(stop_iters=3)
    m.distributions = _distributions()
    depth = torch.full((1, 1, 1, 4), 2.0, requires_grad=True)
    density = torch.zeros(1, 1, 1, 4, requires_grad=True)
    loss = m.target_loss({'main': _logits([0, 0, 1, 1]), 'depth': depth, 'density': density}, {}, 0)['target_balance']
    loss.backward()
    assert depth.grad is None and density.grad.abs().sum() > 0             # the depth is detached
    expected = m.distributions.target(torch.tensor([[[0, 0, 1, 1]]]), torch.full((1, 1, 4), 2.0))
    assert (expected[0, 0, 0, :2] > 0).all() and (expected[0, 0, 0, 2:] == 0).all()


def test_the_discriminator_sees_self_information_times_density():
    m = DepthDistribution(stop_iters=3)
    logits = torch.randn(1, 3, 2, 2)
    density = torch.rand(1, 1, 2, 2)
    p = torch.softmax(logits, 1)
    expected = -p * torch.log2(p) / math.log2(3) * density
    assert torch.allclose(m.discriminator_inputs({'main': logits, 'density_up': density})['main'], expected, atol=1e-6)


def test_weights_follow_the_official_config():
    m = DepthDistribution(stop_iters=90)
    assert (m.lambda_seg, m.lambda_depth, m.lambda_balance, m.lambda_target_balance, m.lambda_adv) == \
        (1.0, 0.005, 0.01, 0.05, 0.05)
    assert m.self_training_iters == 30 and m.disc_loss_scale == 1.0 and m.head_modules() == []


@pytest.mark.parametrize('option, value', [('components', 0), ('confidence', 0.0), ('confidence', 1.5),
                                           ('region_base0', -1.0), ('region_base1', -1.0),
                                           ('self_training_iters', -1)])
def test_bad_settings_name_the_option(option, value):
    with pytest.raises(ValueError, match=f'method.{option}'):
        DepthDistribution(**{option: value})


def test_depth_distribution_trains_end_to_end(smoke_run):
    record, _ = smoke_run('depth_distribution', target='cityscapes')
    stages = record['training']['summary']
    assert stages['adaptation']['iterations'] > 0 and stages['self_training']['iterations'] > 0
    assert 0 <= record['pseudo_labels']['kept_fraction'] <= 1 and len(record['pseudo_labels']['region_thresholds']) == 19
    assert 0 <= record['metrics']['target_test']['miou16'] <= 1
