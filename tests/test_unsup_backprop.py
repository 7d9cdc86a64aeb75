"""Unsupervised segmentation by backpropagation (seed 001 §2.2, Kanezaki; Kim et al. TIP 2020): its
losses by hand, the per-image networks, the stopping rule and the label-free cluster-to-class map."""
import math

import pytest
import torch
import torch.nn.functional as F

from udabench.methods.unsup_backprop import ImageNets, UnsupervisedBackprop, clusters_to_classes, refinement_losses


def test_similarity_and_continuity_losses_by_hand():
    r = torch.tensor([[[[2.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [3.0, 0.0]]]])   # (1, 2, 2, 2)
    similarity, continuity, labels = refinement_losses(r)
    assert labels.tolist() == [[[0, 1], [1, 0]]]                          # argmax; tie at (1, 1) -> channel 0
    p = [F.softmax(r[0, :, i, j], 0)[labels[0, i, j]] for i in range(2) for j in range(2)]
    assert similarity.item() == pytest.approx(-sum(math.log(v) for v in p) / 4)
    vertical = (abs(0 - 2) + abs(0 - 0) + abs(3 - 0) + abs(0 - 1)) / 4      # rows i+1 minus i, both channels
    horizontal = (abs(0 - 2) + abs(0 - 0) + abs(1 - 0) + abs(0 - 3)) / 4
    assert continuity.item() == pytest.approx(vertical + horizontal)


def test_clusters_take_the_majority_class_of_source_only():
    clusters = torch.tensor([[[5, 5, 7], [5, 7, 7]]])
    classes = torch.tensor([[[1, 1, 0], [0, 2, 2]]])
    # cluster 5: classes 1, 1, 0 -> 1; cluster 7: 0, 2, 2 -> 2
    assert clusters_to_classes(clusters, classes, 3).tolist() == [[[1, 1, 2], [1, 2, 2]]]
    tie = clusters_to_classes(torch.zeros(1, 1, 2, dtype=torch.long), torch.tensor([[[1, 0]]]), 2)
    assert tie.tolist() == [[[0, 0]]]                                     # a tie goes to the lower id


def test_grouped_networks_are_independent_per_image_networks():
    """Image i's group is its own network: its output does not change with the other images, and a
    batch of one with the same seed gives the same network."""
    torch.manual_seed(0)
    x = torch.rand(3, 1, 8, 8)
    both = ImageNets(3, 1, 4, 2, seeds=[11, 12, 13])(x)
    alone = ImageNets(1, 1, 4, 2, seeds=[12])(x[1:2])
    assert torch.allclose(both[1], alone[0], atol=1e-6)
    other = ImageNets(3, 1, 4, 2, seeds=[11, 12, 13])(torch.cat([x[:1], x[1:2], torch.rand(1, 1, 8, 8)]))
    assert torch.allclose(other[1], both[1], atol=1e-6)
    nets = ImageNets(3, 1, 4, 2, seeds=[11, 12, 13])
    nets(x)[0].sum().backward()                                           # image 0's loss
    first = nets.layers[0]
    assert first.weight.grad[:4].abs().sum() > 0 and torch.all(first.weight.grad[4:] == 0)   # reaches only its net


def _method(**kwargs):
    m = UnsupervisedBackprop(**{**dict(channels=6, max_iters=30, min_labels=3), **kwargs})
    m.seed = 0
    return m


def test_clustering_does_not_depend_on_the_batching():
    torch.manual_seed(0)
    images = torch.rand(3, 1, 12, 12) * 2 - 1
    m = _method()
    together = m.cluster(images)
    assert torch.equal(together[2], _method().cluster(images[2:3])[0])
    assert m.iterations_used[0].max() <= 30 and m.cluster_counts[0].min() >= 1


def test_the_stop_rule_is_checked_before_each_step():
    """With min_labels >= channels the argmax at step 0 already qualifies: one step is taken and the
    clusters are the argmax of the next forward pass."""
    m = _method(channels=4, min_labels=4, max_iters=50)
    m.cluster(torch.rand(2, 1, 8, 8) * 2 - 1)
    assert m.iterations_used[0].tolist() == [1, 1]


def test_end_to_end_on_the_skin_and_urban_twins(smoke_run):
    record, _ = smoke_run('unsup_backprop')
    assert 0 <= record['metrics']['target_all']['iou'] <= 1
    assert 'source_only' in record['metrics']['trace'] and record['clustering']['iterations_used']['max'] <= 5
    urban, _ = smoke_run('unsup_backprop', target='cityscapes')
    assert 0 <= urban['metrics']['target_test']['miou16'] <= 1 and urban['clustering']['clusters']['max'] >= 1


def test_bad_options_are_named():
    with pytest.raises(ValueError, match='unsup_backprop needs convs >= 1'):
        UnsupervisedBackprop(convs=0)
