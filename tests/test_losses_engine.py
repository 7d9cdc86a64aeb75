import math

import numpy as np
import pytest
import torch

from udabench.engine import StageRunner, batch_indices
from udabench.methods.losses import binary_focal_loss, dice_bce_loss, segmentation_loss, soft_dice_loss


def test_focal_loss_matches_hand_computed_value():
    logits = torch.tensor([0.0, 2.0])
    target = torch.tensor([1.0, 0.0])
    p0, p1 = 0.5, 1 / (1 + math.exp(-2.0))
    expected = (-0.75 * (1 - p0) ** 2 * math.log(p0) - 0.25 * p1 ** 2 * math.log(1 - p1)) / 2
    assert binary_focal_loss(logits, target).item() == pytest.approx(expected, rel=1e-5)


def test_dice_loss_is_zero_for_a_confident_perfect_prediction():
    target = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert soft_dice_loss(target * 40 - 20, target).item() == pytest.approx(0.0, abs=1e-6)
    assert dice_bce_loss(target * 40 - 20, target).item() == pytest.approx(0.0, abs=1e-6)


def test_unknown_loss_names_the_choices():
    with pytest.raises(KeyError, match='dice_bce'):
        segmentation_loss('nope')


def test_batches_are_seeded_and_cover_each_epoch():
    a = [batch_indices(10, 5, it, seed=3) for it in range(4)]
    b = [batch_indices(10, 5, it, seed=3) for it in range(4)]
    assert all((x == y).all() for x, y in zip(a, b))
    assert sorted(np.concatenate(a[:2])) == list(range(10))


def _fit(runner, stop_at=None):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    x = torch.randn(20, 3)

    def step(it):
        if stop_at is not None and it == stop_at:
            raise KeyboardInterrupt
        idx = torch.as_tensor(batch_indices(20, 4, it, 0))
        loss = model(x[idx]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {'loss': loss.item()}
    runner.run('stage', step, 12, {'model': model, 'opt': opt})
    return model.weight.detach().clone()


def test_interrupted_stage_resumes_to_the_uninterrupted_result(tmp_path):
    straight = _fit(StageRunner(tmp_path / 'a', checkpoint_every=4, progress=False))
    runner = StageRunner(tmp_path / 'b', checkpoint_every=4, progress=False)
    with pytest.raises(KeyboardInterrupt):
        _fit(runner, stop_at=6)
    resumed = _fit(runner)
    assert torch.allclose(straight, resumed)


def test_stage_logs_survive_a_resume_and_reach_the_shared_history(tmp_path):
    straight = StageRunner(tmp_path / 'a', checkpoint_every=4, progress=False)
    _fit(straight)
    parent = StageRunner(tmp_path / 'b', checkpoint_every=4, progress=False)
    runner = parent.child(tmp_path / 'cache', prefix='cached/')
    with pytest.raises(KeyboardInterrupt):
        _fit(runner, stop_at=6)
    _fit(runner)
    assert [log['loss'] for log in parent.history['cached/stage']] == [log['loss'] for log in straight.history['stage']]
    assert len(parent.history['cached/stage']) == 12
