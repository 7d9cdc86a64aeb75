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
