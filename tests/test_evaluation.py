import numpy as np
import pytest

from udabench.evaluation import BinarySegEvaluator, MultiClassIoUEvaluator


def test_binary_iou_dice_accumulate_over_the_whole_set():
    ev = BinarySegEvaluator(threshold=0.5)
    # image 1: tp=2, fp=1, fn=1 ; image 2: tp=0, fp=0, fn=2
    probs = np.array([[[0.9, 0.8], [0.7, 0.1]], [[0.2, 0.4], [0.0, 0.49]]])
    masks = np.array([[[1, 1], [0, 1]], [[1, 1], [0, 0]]])
    ev.update(probs, masks)
    out = ev.compute()
    assert (out['tp'], out['fp'], out['fn']) == (2, 1, 3)
    assert out['iou'] == pytest.approx(2 / 6)
    assert out['dice'] == pytest.approx(4 / 8)
    # per-image mean with +1 smoothing: (2+1)/(4+1) and (0+1)/(2+1)
    assert out['per_image_mean_iou'] == pytest.approx((3 / 5 + 1 / 3) / 2)


def test_binary_batches_equal_one_pass():
    rng = np.random.default_rng(0)
    probs, masks = rng.random((6, 8, 8)), rng.integers(0, 2, (6, 8, 8))
    a, b = BinarySegEvaluator(), BinarySegEvaluator()
    a.update(probs, masks)
    b.update(probs[:2], masks[:2])
    b.update(probs[2:], masks[2:])
    assert a.compute() == b.compute()


def test_binary_empty_masks_and_empty_predictions_score_one():
    ev = BinarySegEvaluator()
    ev.update(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)))
    assert ev.compute()['iou'] == 1.0 and ev.compute()['dice'] == 1.0


def test_binary_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match='shape'):
        BinarySegEvaluator().update(np.zeros((1, 4, 4)), np.zeros((1, 4, 5)))


def test_multiclass_iou_subsets_and_ignore():
    ev = MultiClassIoUEvaluator(num_classes=3, ignore_index=255, class_subsets={'all': [0, 1, 2], 'sub': [0, 2]})
    labels = np.array([[[0, 0, 1, 2, 255]]])
    pred = np.array([[[0, 1, 1, 2, 0]]])
    ev.update(pred, labels)
    out = ev.compute()
    assert out['iou_0'] == pytest.approx(1 / 2)     # tp 1, fn 1
    assert out['iou_1'] == pytest.approx(1 / 2)     # tp 1, fp 1
    assert out['iou_2'] == pytest.approx(1.0)
    assert out['all'] == pytest.approx(2 / 3)
    assert out['sub'] == pytest.approx(3 / 4)


def test_multiclass_all_ignore_gives_no_number_from_nothing():
    ev = MultiClassIoUEvaluator(num_classes=3)
    ev.update(np.zeros((1, 3, 3), int), np.full((1, 3, 3), 255))
    out = ev.compute()
    assert out['miou'] is None and out['iou_0'] is None          # JSON null, never NaN
    ev.update(np.zeros((1, 1, 2), int), np.array([[[0, 1]]]))    # class 2: in neither, left out of the mean
    out = ev.compute()
    assert out['iou_2'] is None and out['miou'] == pytest.approx((1 / 2 + 0) / 2)


def test_multiclass_rejects_out_of_range_labels():
    with pytest.raises(ValueError, match='labels outside'):
        MultiClassIoUEvaluator(num_classes=2).update(np.zeros((1, 1, 2), int), np.array([[[0, 5]]]))


def test_scores_made_a_batch_at_a_time_equal_those_of_the_whole_sets_predictions(monkeypatch):
    """``runner.evaluate`` reads, predicts and scores a batch at a time; its scores (over all
    images, over the test rows, per prediction step) must equal those of all predictions at once."""
    import torch
    from udabench.datasets import base
    from udabench.runner import evaluate, score
    monkeypatch.setattr(base, 'READ_BATCH', 3)
    rng = np.random.default_rng(0)
    data = base.SegmentationSet('set', rng.integers(0, 256, (10, 6, 5)).astype(np.uint8),
                                rng.integers(0, 2, (10, 6, 5)).astype(np.uint8), 'synthetic')

    class Brightness:             # skin where bright; a second step thresholds the square
        def predict_steps(self, x):
            p = (x[:, 0] + 1) / 2
            return {'final': p, 'squared': p ** 2}
    test_idx = np.array([1, 2, 3, 7])
    scores = evaluate(Brightness(), data.normalised_images(), data.masks, 'skin', 'cpu', test_idx)
    whole = Brightness().predict_steps(torch.as_tensor(np.asarray(data.normalised_images())))
    for step, probs in whole.items():
        assert scores[step]['all'] == score(probs.numpy(), data.masks)
        assert scores[step]['test'] == score(probs.numpy()[test_idx], data.masks[test_idx])
