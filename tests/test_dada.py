import numpy as np
import pytest
import torch

from udabench.datasets.base import SegmentationSet
from udabench.engine import StageRunner
from udabench.methods.base import FitContext
from udabench.methods.dada import DADA, DepthFusion
from udabench.methods.losses import berhu_loss


def test_berhu_on_both_sides_of_its_threshold():
    pred = torch.tensor([0.0, 0.0, 0.0])
    target = torch.tensor([0.1, 1.0, 10.0])        # |x| = 0.1, 1, 10; c = 0.2 * 10 = 2
    c = 2.0
    expected = (0.1 + 1.0 + (100 + c * c) / (2 * c)) / 3
    assert berhu_loss(pred, target).item() == pytest.approx(expected)
    assert berhu_loss(target, target).item() == 0.0


def test_depth_fusion_shapes():
    depth, fused = DepthFusion(32)(torch.randn(2, 32, 8, 8))
    assert depth.shape == (2, 1, 8, 8) and fused.shape == (2, 32, 8, 8)


def test_dada_without_source_depth_fails_clearly(tmp_path):
    source = SegmentationSet('compaq', np.zeros((4, 32, 32), np.uint8), np.zeros((4, 32, 32), np.uint8), 'real',
                             description='data/real/compaq (plain layout, 4 images)')
    method = DADA(stop_iters=1, batch_size=2)
    ctx = FitContext(source=source, stages=StageRunner(tmp_path, progress=False), cache_dir=tmp_path,
                     net=dict(name='deeplabv3plus', width=8), seg_recipe=dict(loss='focal', optimizer=dict(type='SGD', lr=0.0),
                                                                               batch_size=2, epochs=0.01),
                     target_images=np.zeros((4, 1, 32, 32), np.float32), progress=False)
    with pytest.raises(ValueError, match='DADA needs source depth.*compaq/depth'):
        method.fit(ctx)


def test_dada_end_to_end_smoke(smoke_run):
    record, _ = smoke_run('dada', target='snv', net='unet')
    assert 0 <= record['metrics']['target_all']['iou'] <= 1
