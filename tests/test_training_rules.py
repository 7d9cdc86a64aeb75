"""Controls of the adaptation baselines' training rules: each test fails when a loss is wired wrong
(a flipped label, an ignored weight, a dropped pixel weight), not only on shapes."""
import math

import numpy as np
import pytest
import torch

from udabench.datasets.base import SegmentationSet
from udabench.engine import StageRunner, build_optimizer
from udabench.methods.base import FitContext
from udabench.methods.discriminator import (SOURCE_LABEL, TARGET_LABEL, domain_bce, entropy_loss, two_class_probs,
                                            weighted_self_information)
from udabench.registry import METHODS, lookup, registered

SIZE = 32
PLAIN_SGD = dict(type='SGD', lr=1e-2)
#: each adversarial method's generator weights, as keyword arguments
ADV_WEIGHTS = {'adaptsegnet': lambda w: dict(lambda_adv_target1=w, lambda_adv_target2=w),
               'advent': lambda w: dict(lambda_adv=w, lambda_adv_aux=w),
               'clan': lambda w: dict(lambda_adv=w), 'dada': lambda w: dict(lambda_adv=w),
               'bdl': lambda w: dict(lambda_adv_target=w)}


def tiny_ctx(tmp_path, net='deeplabv3plus', n=6, fraction_seed=0):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (n, SIZE, SIZE)).astype(np.uint8)
    masks = (rng.random((n, SIZE, SIZE)) > 0.5).astype(np.uint8)
    source = SegmentationSet('compaq', images, masks, 'synthetic', depth=rng.random((n, SIZE, SIZE)) + 1.0)
    target = rng.random((n, 1, SIZE, SIZE)).astype(np.float32) * 2 - 1
    return FitContext(source=source, stages=StageRunner(tmp_path, progress=False), cache_dir=tmp_path, seed=fraction_seed,
                      net=dict(name=net, width=8), seg_recipe=dict(loss='focal'), target_images=target, progress=False)


def built(tmp_path, name, net='deeplabv3plus', **kwargs):
    """A method built on the tiny context, deterministic: BatchNorm frozen, no dropout."""
    kwargs = {'warm_start': False, 'bn': 'frozen', 'optimizer': PLAIN_SGD, 'disc_width': 8, 'stop_iters': 10, **kwargs}
    method = lookup(METHODS, name)(**kwargs)
    ctx = tiny_ctx(tmp_path, net)
    method.build(ctx)
    for head in method.head_modules():
        if hasattr(head, 'dropout'):
            head.dropout = None
    method.train()
    return method, ctx


def batch_of(ctx, n=2):
    return {'xs': torch.as_tensor(ctx.source.normalised_images()[:n]),
            'ys': torch.as_tensor(ctx.source.masks[:n, None].astype(np.float32)),
            'ds': torch.as_tensor(ctx.source.depth[:n, None].astype(np.float32)),
            'xt': torch.as_tensor(ctx.target_images[:n])}


def d_target_logit(method, xt):
    with torch.no_grad():
        inputs = method.discriminator_inputs(method.outputs(xt))
        return sum(method.discriminate(k, v).mean() for k, v in inputs.items()).item()


def one_generator_step(tmp_path, name, weight, it=0, **kwargs):
    torch.manual_seed(0)
    method, ctx = built(tmp_path / f'{name}{weight}', name, **ADV_WEIGHTS[name](weight), **kwargs)
    batch = batch_of(ctx)
    before = d_target_logit(method, batch['xt'])
    seg_opt = build_optimizer(method.segmentation_param_groups(), method.optimizer)
    method.train_step(batch, it, seg_opt, None)
    return d_target_logit(method, batch['xt']) - before, method


@pytest.mark.parametrize('name', sorted(ADV_WEIGHTS))
def test_one_generator_step_moves_the_discriminator_output_on_target_toward_source(tmp_path, name):
    moved, _ = one_generator_step(tmp_path, name, 5.0)
    still, _ = one_generator_step(tmp_path, name, 0.0)
    assert moved < still     # toward the source label 0 (lower logits), beyond what the seg loss does


@pytest.mark.parametrize('name', sorted(ADV_WEIGHTS))
def test_one_discriminator_step_lowers_its_loss_on_the_labels_it_was_given(tmp_path, name):
    torch.manual_seed(0)
    method, ctx = built(tmp_path, name, optimizer=dict(type='SGD', lr=0.0))
    batch = batch_of(ctx)

    def d_loss():
        with torch.no_grad():
            src = method.discriminator_inputs(method.outputs(batch['xs']))
            tgt = method.discriminator_inputs(method.outputs(batch['xt']))
            return sum(domain_bce(method.discriminate(k, src[k]), SOURCE_LABEL)
                       + domain_bce(method.discriminate(k, tgt[k]), TARGET_LABEL) for k in src).item()
    before = d_loss()
    seg_opt = build_optimizer(method.segmentation_param_groups(), method.optimizer)
    disc_opt = build_optimizer(method.discriminators.parameters(), dict(type='SGD', lr=1e-2))
    logs = method.train_step(batch, 0, seg_opt, disc_opt)
    assert d_loss() < before
    for k in method.discriminators:        # logged: the loss optimised and the BCE, ln 2 at chance
        assert f'disc_{k}' in logs and f'disc_{k}_bce' in logs and f'adv_{k}' in logs and f'adv_{k}_bce' in logs


def test_one_minent_step_lowers_target_entropy(tmp_path):
    def entropy_change(weight):
        torch.manual_seed(0)
        method, ctx = built(tmp_path / str(weight), 'minent', lambda_ent=weight, lambda_ent_aux=weight)
        batch = batch_of(ctx)

        def entropy():
            with torch.no_grad():
                return entropy_loss(two_class_probs(method.outputs(batch['xt'])['main'])).item()
        before = entropy()
        method.train_step(batch, 0, build_optimizer(method.segmentation_param_groups(), method.optimizer), None)
        return entropy() - before
    assert entropy_change(5.0) < entropy_change(0.0)


def test_clan_pixel_weights_change_the_adversarial_gradient_and_start_after_the_preheat(tmp_path):
    after = 3   # preheat = 0.2 * 10 = 2: weighting from iteration 3 on
    _, weighted = one_generator_step(tmp_path / 'w', 'clan', 5.0, it=after, lambda_local=10.0, preheat_fraction=0.2)
    _, plain = one_generator_step(tmp_path / 'p', 'clan', 5.0, it=after, lambda_local=0.0, epsilon=1.0, preheat_fraction=0.2)
    diff = max((a - b).abs().max().item() for a, b in zip(weighted.net.parameters(), plain.net.parameters()))
    assert diff > 0
    out = weighted.outputs(batch_of(tiny_ctx(tmp_path))['xt'])
    assert weighted.pixel_weights(out, 2) == {} and 'main' in weighted.pixel_weights(out, 3)


def test_clan_schedule_warm_up_no_halving_and_corner_aligned_upsampling(tmp_path):
    from udabench.methods.clan import CLAN
    clan = CLAN(stop_iters=100, preheat_fraction=0.1)
    assert clan.lr_factor(0) == 0 and clan.lr_factor(5) == pytest.approx(0.5)
    assert clan.lr_factor(10) == pytest.approx((1 - 10 / 100) ** 0.9)
    assert clan.disc_loss_scale == 1.0
    method, _ = built(tmp_path, 'clan')
    x = torch.rand(1, 2, SIZE, SIZE)
    expected = torch.nn.functional.interpolate(method.discriminators['main'](x), (SIZE, SIZE), mode='bilinear',
                                               align_corners=True)
    assert torch.allclose(method.discriminate('main', x), expected)


def depth_aware_methods() -> list[str]:
    from udabench.methods.adaptation import DepthAwareAdaptation
    return [name for name in registered(METHODS) if issubclass(METHODS.module_dict[name], DepthAwareAdaptation)]


@pytest.mark.parametrize('name', depth_aware_methods())
def test_depth_aware_discriminator_input_is_the_weighted_self_information_times_the_depth_cue(tmp_path, name):
    """Every DepthAwareAdaptation (DADA, depth distribution, any new one) names a (N, 1, H, W) output of
    its network as ``depth_cue``; its discriminator sees that output times the weighted self-information,
    and the adversarial gradient reaches the cue (the generator steps of valeoai/DADA's train_dada and
    depdis's train_depdis do not detach it)."""
    method, ctx = built(tmp_path, name)
    out = method.outputs(batch_of(ctx)['xt'])
    assert out[method.depth_cue].shape == (2, 1, SIZE, SIZE)
    cue = out[method.depth_cue].detach().requires_grad_()
    fused = method.discriminator_inputs({**out, method.depth_cue: cue})['main']
    information = weighted_self_information(two_class_probs(out['main'])).detach()
    assert torch.allclose(fused, information * cue)
    fused.sum().backward()
    assert torch.allclose(cue.grad, information.sum(1, keepdim=True))


def test_dada_fusion_starts_as_the_identity():
    from udabench.methods.dada import DepthFusion
    feats = torch.randn(2, 32, 8, 8)
    assert torch.equal(DepthFusion(32)(feats)[1], feats)


@pytest.mark.parametrize('name', ['adaptsegnet', 'advent', 'minent', 'clan', 'bdl', 'dise', 'dada'])
def test_build_leaves_batchnorm_statistics_unchanged(tmp_path, name):
    method = lookup(METHODS, name)(warm_start=False, stop_iters=2, disc_width=8)
    method.build(tiny_ctx(tmp_path, 'unet' if name == 'dise' else 'deeplabv3plus'))
    for bn in (m for m in method.net.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        assert torch.all(bn.running_mean == 0) and torch.all(bn.running_var == 1), name


@pytest.mark.parametrize('name', ['adaptsegnet', 'clan', 'dada'])
def test_heads_and_new_parts_learn_at_ten_times_the_base_lr(tmp_path, name):
    method, _ = built(tmp_path, name, bn='affine_frozen')
    groups = method.segmentation_param_groups()
    assert groups[1]['lr'] == pytest.approx(10 * PLAIN_SGD['lr']) and 'lr' not in groups[0]
    fast = {id(p) for p in groups[1]['params']}
    slow = {id(p) for p in groups[0]['params']}
    new = {'adaptsegnet': lambda: method.net.model.auxiliary_head, 'clan': lambda: method.classifier2,
           'dada': lambda: method.fusion}[name]()
    heads = [*new.parameters(), *method.net.model.decode_head.parameters()]
    assert all(id(p) in fast for p in heads if p.requires_grad)
    assert all(id(p) in slow for p in method.net.model.backbone.parameters() if p.requires_grad)
    assert not any(id(p) in fast | slow for m in method.net.modules() if isinstance(m, torch.nn.BatchNorm2d)
                   for p in m.parameters())   # BatchNorm's affine parameters are frozen


def test_poly_scales_each_groups_own_base_lr_over_the_horizon(smoke_run, tmp_path):
    record, _ = smoke_run('advent', net='unet')
    ckpt = torch.load(tmp_path / 'work' / 'smoke' / 'synthetic' / 'advent' / 'hand_unet_seed0'
                      / record['stage_keys']['adaptation'] / 'adaptation.pth', weights_only=True)
    lrs = [g['lr'] for g in ckpt['state']['seg_opt']['param_groups']]
    factor = (1 - 2 / round(3 * 250 / 120)) ** 0.9     # last step 2 of a horizon of 3 x 250/120 iterations
    assert lrs == pytest.approx([2.5e-4 * factor, 2.5e-3 * factor])
    assert ckpt['state']['disc_opt']['param_groups'][0]['lr'] == pytest.approx(1e-4 * factor)


def test_horizon_defaults_to_the_originals_ratio_and_old_keys_fail_clearly():
    from udabench.methods.adaptsegnet import AdaptSegNet
    from udabench.methods.advent import AdvEnt
    assert AdvEnt(stop_iters=120).max_iters == 250 and AdaptSegNet(stop_iters=150).max_iters == 250
    assert AdvEnt(stop_iters=120).lr_factor(120) == pytest.approx((130 / 250) ** 0.9)   # ~0.55 at the stop
    assert AdvEnt(stop_iters=10, max_iters=40).max_iters == 40
    with pytest.raises(ValueError, match='max_iters'):
        AdvEnt(stop_iters=10, max_iters=5)
    with pytest.raises(ValueError, match='method.stop_iters'):
        AdvEnt(iterations=10)
    with pytest.raises(ValueError, match='method.bn'):
        AdvEnt(freeze_bn=True)
    with pytest.raises(ValueError, match='method.bn must be one of'):
        AdvEnt(bn='yes')


def test_bdl_pseudo_labels_come_from_the_training_fraction_only(tmp_path):
    from udabench.methods.bdl import BDL
    method = BDL(target_fraction=0.5)
    method.net = torch.nn.Conv2d(1, 1, 1)
    ctx = tiny_ctx(tmp_path, n=8)
    keep = method.target_training_indices(ctx)
    labels = method.target_pseudo_labels(ctx)
    assert np.all(labels[np.setdiff1d(np.arange(8), keep)] == -1)
    other = np.setdiff1d(np.arange(8), keep)
    ctx.target_images.array[other] = 1.0    # images outside the fraction must not move its thresholds
    assert np.array_equal(method.target_pseudo_labels(ctx)[keep], labels[keep])


def test_bdl_ssl_term_is_the_networks_segmentation_loss_over_labelled_pixels(tmp_path):
    from udabench.methods.losses import binary_focal_loss
    method, _ = built(tmp_path, 'bdl', lambda_ssl=0.5)
    logits = torch.randn(2, 1, 4, 4)
    labels = torch.tensor([1.0, 0.0, -1.0, 1.0]).repeat(2, 1, 4, 1)
    kept = labels >= 0
    expected = 0.5 * binary_focal_loss(logits[kept], labels[kept])
    assert method.target_loss({'main': logits}, {'yt': labels}, 0)['ssl'].item() == pytest.approx(expected.item())


def test_dise_lambda_seg_weighs_the_auxiliary_head(tmp_path):
    from udabench.methods.dise import DISE
    from udabench.methods.losses import binary_focal_loss
    method = DISE(lambda_seg=0.5)
    method.seg_loss = binary_focal_loss
    main, aux, masks = torch.randn(1, 1, 4, 4), torch.randn(1, 1, 4, 4), (torch.rand(1, 1, 4, 4) > 0.5).float()
    expected = binary_focal_loss(main, masks) + 0.5 * binary_focal_loss(aux, masks)
    assert method.seg_terms(main, aux, masks).item() == pytest.approx(expected.item())
    assert method.lambda_label_transfer == 1.0
    assert method.image_disc_optimizer['betas'] == (0.5, 0.999)


def bn_statistics(module):
    return [b.clone() for n, b in module.named_buffers() if n.endswith(('running_mean', 'running_var'))]


@pytest.mark.parametrize('label_transfer', [0.0, 1.0])
def test_dise_label_transfer_at_weight_0_leaves_the_nets_batchnorm_statistics_alone(tmp_path, label_transfer):
    """The fine-tuning control sets every target weight 0; a forward of the (then untrained) translations
    through the segmentation net in train mode would still move its BatchNorm statistics."""
    torch.manual_seed(0)
    method, ctx = built(tmp_path, 'dise', bn='affine_frozen', lambda_label_transfer=label_transfer)
    batch = batch_of(ctx)
    method.source_loss(method.outputs(batch['xs']), batch)
    out = method.outputs(batch['xt'])
    before = bn_statistics(method.net)
    losses = method.target_loss(out, batch, 0)
    unchanged = all(torch.equal(a, b) for a, b in zip(before, bn_statistics(method.net)))
    assert unchanged == (label_transfer == 0) and ('label_transfer' in losses) == (label_transfer != 0)


def test_adaptation_run_records_discriminator_and_gradient_diagnostics(smoke_run):
    record, path = smoke_run('adaptsegnet', net='unet')
    diag = record['adaptation_diagnostics']['adaptation']
    assert {'disc_main_bce', 'disc_aux_bce', 'grad_ratio_adv'} <= set(diag)
    assert 0 <= diag['disc_main_bce']['fraction_below_ln2'] <= 1 and diag['grad_ratio_adv']['mean'] > 0
    header = path.with_name(path.stem + '.log.csv').read_text().splitlines()[0].split(',')
    assert {'seg', 'seg_aux', 'adv_main', 'adv_main_bce', 'disc_main', 'disc_main_bce', 'grad_ratio_adv'} <= set(header)


def test_controls_study_runs_each_declared_control(monkeypatch, capsys):
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location('run_benchmark', Path(__file__).parent.parent / 'tools' / 'run_benchmark.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    specs = []
    def collect(s, force=False):
        specs.append(s)
        raise RuntimeError('not run in this test')
    monkeypatch.setattr(tool, 'run', collect)
    assert tool.main(['--method', 'advent', '--target', 'hand', '--profile', 'smoke', '--study', 'controls']) == 1
    assert [s.tag for s in specs] == ['finetune', 'positive_f0.2', 'positive_f1.0']
    assert specs[0].overrides == {'method.lambda_adv': 0.0, 'method.lambda_adv_aux': 0.0}
    assert specs[1].overrides['method.lambda_adv'] == pytest.approx(0.1) and specs[1].overrides['method.target_fraction'] == 0.2
    assert all(s.study == 'controls' for s in specs)


@pytest.mark.parametrize('name', ['adaptsegnet', 'advent', 'minent', 'clan', 'bdl', 'dise', 'dada'])
def test_fine_tuning_control_zeroes_every_target_weight(tmp_path, name):
    from udabench.registry import build
    from udabench.runner import compose_config
    cfg = compose_config(name, 'unet', 'smoke')
    method = build(METHODS, compose_config(name, 'unet', 'smoke', dict(cfg.controls['finetune'])).method)
    assert all(w == 0 for w in method.adversarial_weights(10 ** 6).values())
    for key in (k.split('.', 1)[1] for k in cfg.controls['finetune']):
        value = getattr(method, key, {})      # AdaptSegNet keeps its two weights in ``lambda_adv``
        assert all(v == 0 for v in (value.values() if isinstance(value, dict) else [value])), key
    assert math.isclose(cfg.controls['positive_f1.0']['method.target_fraction'], 1.0)
