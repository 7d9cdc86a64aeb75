"""Cosine similarity between spatial features (seed 003, Chung et al. WACV 2022): Eq. 7-8 by hand,
the class-wise FIFO dictionary, process A (only correctly classified source features are enqueued,
detached) and process B (ignored pseudo-label pixels take the current prediction), end to end."""
import math

import pytest
import torch

from udabench.methods.base import IGNORE, class_map
from udabench.methods.cosine_similarity import CosineSimilarity, FeatureDictionary, thresholded_cosine_loss

A, B = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])


def test_thresholded_cosine_loss_by_hand():
    target = torch.stack([A, B])
    source = torch.stack([A, (A + B) / math.sqrt(2)])
    half = 1 / math.sqrt(2)
    # cosines [[1, .707], [0, .707]]; above 0.5 kept, else 0; mean |M-hat - 1|
    assert thresholded_cosine_loss(target, source, 0.5).item() == pytest.approx((0 + (1 - half) + 1 + (1 - half)) / 4)
    assert thresholded_cosine_loss(target, source, 0.8).item() == pytest.approx((0 + 1 + 1 + 1) / 4)
    assert thresholded_cosine_loss(3 * target, 0.5 * source, 0.5).item() == pytest.approx(
        thresholded_cosine_loss(target, source, 0.5).item())                 # scale-free: cosines


def test_only_similarities_above_the_threshold_are_pulled():
    target = torch.stack([A + 0.1 * B, B + 0.1 * A]).requires_grad_(True)
    source = torch.stack([A])                                             # row 1's cosine ~0.1 < 0.5
    thresholded_cosine_loss(target, source, 0.5).backward()
    assert target.grad[0].abs().sum() > 0 and torch.all(target.grad[1] == 0)
    step = target.detach() - 0.5 * target.grad
    assert torch.cosine_similarity(step[:1], source).item() > torch.cosine_similarity(target[:1], source).item()


def test_dictionary_is_a_fifo_of_the_latest_features_per_class():
    d = FeatureDictionary(num_classes=2, size=3, channels=1)
    d.enqueue(1, torch.tensor([[1.0], [2.0]]))
    assert d.entries(0).shape == (0, 1) and d.entries(1).flatten().tolist() == [1.0, 2.0]
    d.enqueue(1, torch.tensor([[3.0], [4.0]]))                           # 1 drops out, the latest 3 stay
    assert sorted(d.entries(1).flatten().tolist()) == [2.0, 3.0, 4.0]
    d.enqueue(1, torch.arange(10.0, 17.0)[:, None])                      # more than it holds: strided subset
    assert sorted(d.entries(1).flatten().tolist()) == [10.0, 13.0, 16.0]
    grad = torch.ones(1, 1, requires_grad=True)
    d.enqueue(0, grad * 2)
    assert not d.features.requires_grad                                   # stored detached


def _method(classes=2, **kwargs):
    m = CosineSimilarity(**{**dict(threshold=0.5, dictionary_size=8), **kwargs})
    m.classes = classes
    m.dictionary = FeatureDictionary(classes, 8, 2)
    m.seg_loss = lambda logits, target, valid=None: logits.sum() * 0
    return m


def _logits(classes_of_pixels):
    """(1, 2, 1, W) two-class logits predicting the given classes."""
    ids = torch.tensor(classes_of_pixels)
    return torch.stack([(ids == 0).float(), (ids == 1).float()])[None, :, None] * 4 - 2


def test_process_a_enqueues_only_the_correctly_classified_source_features():
    m = _method()
    features = torch.stack([A, B, A + B, 2 * B], 1)[None, :, None]     # (1, F=2, 1, 4)
    ys = torch.tensor([[[0, 1, 1, 255]]])                                 # pixel 3 is ignored
    m.source_loss({'main': _logits([0, 1, 0, 1]), 'features': features.requires_grad_(True)}, {'ys': ys})
    assert m.dictionary.entries(0).tolist() == [A.tolist()]                # pixel 0 right
    assert m.dictionary.entries(1).tolist() == [B.tolist()]                # pixel 1 right; 2 wrong; 3 ignored


def test_process_b_fills_ignored_pseudo_labels_with_the_current_prediction():
    m = _method()
    m.dictionary.enqueue(0, A[None])
    m.dictionary.enqueue(1, B[None])
    features = torch.stack([A, B], 1)[None, :, None]                      # pixel 0 = A, pixel 1 = B
    right = m.cosine_loss({'main': _logits([0, 1]), 'features': features}, torch.tensor([[[0, 1]]]))
    assert right.item() == pytest.approx(0.0)
    # pixel 0 ignored: it takes the prediction, class 0 -> matches A; class 1 -> against B, cosine 0
    kept = m.cosine_loss({'main': _logits([0, 1]), 'features': features}, torch.tensor([[[IGNORE, 1]]]))
    moved = m.cosine_loss({'main': _logits([1, 1]), 'features': features}, torch.tensor([[[IGNORE, 1]]]))
    assert kept.item() == pytest.approx(0.0)
    assert moved.item() == pytest.approx((0 + 1) / 2 / 2)                  # class 1: rows A, B vs B; / C = 2
    # a pseudo-label beats the prediction where it is not ignored
    held = m.cosine_loss({'main': _logits([1, 1]), 'features': features}, torch.tensor([[[0, 1]]]))
    assert held.item() == pytest.approx(0.0)


def test_class_map_marks_pseudo_label_and_ground_truth_ignores():
    assert class_map(torch.tensor([[[[1.0, -1.0, 0.0]]]])).tolist() == [[[1, IGNORE, 0]]]
    assert class_map(torch.tensor([[[3, 255, 0]]])).tolist() == [[[3, IGNORE, 0]]]


def test_the_target_losses_are_weighted():
    m = _method(lambda_cos=0.25, lambda_ssl=0.0)
    m.seg_loss = lambda logits, target, valid=None: logits.new_tensor(7.0)
    m.dictionary.enqueue(0, A[None])
    features = torch.stack([B, B], 1)[None, :, None]                      # cosine 0 with A: term 1, / C = 2
    losses = m.target_loss({'main': _logits([0, 0]), 'features': features}, {'yt': torch.tensor([[[[0.0, 0.0]]]])}, 0)
    assert losses['ssl'].item() == 0.0 and losses['cos'].item() == pytest.approx(0.25 * 0.5)


def test_bad_settings_name_the_option():
    with pytest.raises(ValueError, match='method.threshold'):
        CosineSimilarity(threshold=1.5)
    with pytest.raises(ValueError, match='method.dictionary_size'):
        CosineSimilarity(dictionary_size=0)


@pytest.mark.parametrize('target', ['hand', 'cityscapes'])
def test_cosine_similarity_trains_end_to_end(smoke_run, target):
    record, _ = smoke_run('cosine_similarity', target=target)
    log = record['training']['summary']['adaptation']
    assert log['iterations'] > 0
    assert 0 <= record['metrics']['target_test']['iou' if target == 'hand' else 'miou16'] <= 1
