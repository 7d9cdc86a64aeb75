import pytest
import torch

from udabench.methods.clan import disagreement, weight_discrepancy
from udabench.methods.discriminator import (FCDiscriminator, domain_bce, entropy_loss, two_class_probs,
                                            weighted_self_information)
from udabench.tables import select


def test_discriminator_shape_and_loss_falls_on_separable_inputs():
    torch.manual_seed(0)
    disc = FCDiscriminator(2, width=8)
    src, tgt = torch.zeros(4, 2, 32, 32), torch.ones(4, 2, 32, 32)
    assert disc(src).shape == (4, 1, 1, 1)
    opt = torch.optim.Adam(disc.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        loss = 0.5 * (domain_bce(disc(src), 0.0) + domain_bce(disc(tgt), 1.0))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_self_information_and_entropy_hand_computed():
    uniform = two_class_probs(torch.zeros(1, 1, 2, 2))          # p = 0.5 for both classes
    assert torch.allclose(weighted_self_information(uniform), torch.full((1, 2, 2, 2), 0.5))
    assert entropy_loss(uniform).item() == pytest.approx(1.0)
    p = torch.tensor([0.25, 0.75]).view(1, 2, 1, 1)
    expected = torch.tensor([0.5, -0.75 * torch.log2(torch.tensor(0.75)).item()]).view(1, 2, 1, 1)
    assert torch.allclose(weighted_self_information(p), expected, atol=1e-6)
    assert entropy_loss(two_class_probs(torch.full((1, 1, 2, 2), 40.0))).item() == pytest.approx(0.0, abs=1e-6)


def test_clan_discrepancies():
    logits = torch.randn(2, 1, 4, 4)
    assert disagreement(logits, logits).abs().max() < 1e-6      # identical classifiers never disagree
    assert disagreement(torch.full((1, 1, 1, 1), 9.0), torch.full((1, 1, 1, 1), -9.0)).item() > 0.99
    a = torch.nn.Conv2d(4, 1, 1)
    b = torch.nn.Conv2d(4, 1, 1)
    b.load_state_dict(a.state_dict())
    assert weight_discrepancy(a, b).item() == pytest.approx(2.0)   # (cos + 1): largest for identical weights
    with torch.no_grad():
        for p in b.parameters():
            p.neg_()
    assert weight_discrepancy(a, b).item() == pytest.approx(0.0, abs=1e-6)


@pytest.fixture(scope='module')
def shared(tmp_path_factory):
    return tmp_path_factory.mktemp('adapt')


@pytest.mark.parametrize('method', ['adaptsegnet', 'advent', 'minent', 'clan'])
def test_methods_train_end_to_end(shared, smoke_run, method):
    record, _ = smoke_run(method, root=shared)
    assert 0 <= record['metrics']['target_all']['iou'] <= 1
    ckpt = torch.load(shared / 'work' / 'smoke' / 'synthetic' / method / 'hand_deeplabv3plus_seed0'
                      / record['stage_keys']['adaptation'] / 'adaptation.pth', weights_only=True)
    assert ckpt['iteration'] == 3


def test_grid_selection_takes_the_best_point_and_says_so():
    def rec(tag, seed, iou):
        return dict(tag=tag, seed=seed, metrics={'target_all': {'iou': iou}, 'target_test': {'iou': 1 - iou}})
    records = [rec('a', 0, 0.3), rec('a', 1, 0.5), rec('b', 0, 0.45), rec('b', 1, 0.45)]
    chosen, tag = select(records, 'target_all', 'target_all')
    assert tag == 'b' and len(chosen) == 2
    assert select(records, 'target_all', 'target_test')[1] == 'a'


def test_grid_selection_compares_only_points_made_on_every_seed_of_the_cell():
    """A point still being made (fewer seeds) is not chosen on a mean over other seeds."""
    def rec(tag, seed, iou):
        return dict(tag=tag, seed=seed, metrics={'target_all': {'iou': iou}})
    records = [rec('', s, 0.4) for s in (0, 1, 2)] + [rec('b', 0, 0.9)] + [rec('c', s, 0.45) for s in (0, 1, 2)]
    chosen, tag = select(records, 'target_all')
    assert tag == 'c' and len(chosen) == 3
    assert select(records[:4], 'target_all')[1] == ''
    assert select([rec('a', 0, 0.3), rec('b', 0, 0.5)], 'target_all')[1] == 'b'   # one seed each: comparable


@pytest.mark.parametrize('bn, statistics_move, train_mode, affine_trains', [
    ('affine_frozen', True, True, False), ('frozen', False, False, False), ('trained', True, True, True)])
def test_batchnorm_modes_default_as_the_originals(bn, statistics_move, train_mode, affine_trains):
    """Default 'affine_frozen' (every original): affine parameters frozen, running statistics still
    updated from the source and target batches (train mode)."""
    from udabench.methods.advent import AdvEnt
    from udabench.methods.networks import SegmentationNet
    assert AdvEnt().bn == 'affine_frozen'
    method = AdvEnt(bn=bn)
    method.net = SegmentationNet('unet', width=4)
    bns = [m for m in method.net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = [bn.running_mean.clone() for bn in bns]
    method.train()
    method.net(torch.randn(2, 1, 32, 32) + 3.0)
    changed = any(not torch.equal(b, bn.running_mean) for b, bn in zip(before, bns))
    assert changed is statistics_move
    assert all(bn.training is train_mode and bn.weight.requires_grad is affine_trains for bn in bns)
    assert method.net.training    # the rest of the network still trains
