import importlib.util
import os
from pathlib import Path

import pytest

from udabench.methods.networks import SegmentationNet
from udabench.runner import compose_config

_spec = importlib.util.spec_from_file_location('startup_check', Path(__file__).resolve().parent.parent / 'tools' / 'startup_check.py')
startup_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(startup_check)


def test_paper_profile_builds_the_paper_backbones_and_the_others_the_light_ones():
    assert compose_config('source_only', 'unet', 'paper').net == dict(name='unet', backbone='paper', efficientnet='b4')
    for profile in ('cpu', 'smoke'):
        assert 'backbone' not in compose_config('source_only', 'unet', profile).net   # 'light', the default
    net = SegmentationNet(**compose_config('source_only', 'deeplabv3plus', 'paper').net, width=8)
    assert type(net.model.backbone).__name__ == 'XceptionAligned'


def test_step_overrides_reach_every_iteration_and_epoch_count():
    out = startup_check.step_overrides('glss', 'unet', 'paper', steps=2, images=16)
    assert out['method.latent_search.iterations'] == 2 and out['method.vae_train.epochs'] == 2
    assert out['profile.seg_epochs'] == 2 and out['profile.counts.compaq'] == 16
    bdl = startup_check.step_overrides('bdl', 'unet', 'paper', steps=2, images=32)
    assert bdl['method.stop_iters'] == bdl['method.translation.iterations'] == 2 and bdl['profile.seg_epochs'] == 1


def test_startup_check_runs_every_stage_for_two_steps(tmp_path, capsys):
    code = startup_check.main(['--profile', 'smoke', '--methods', 'glss', 'bdl', '--nets', 'unet', '--targets', 'hand',
                               '--work-dir', str(tmp_path), '--json', str(tmp_path / 'out.json')])
    printed = capsys.readouterr().out
    assert code == 0 and '2 of 2 runs passed' in printed and 'peak RSS' in printed
    import json
    results = json.loads((tmp_path / 'out.json').read_text())
    for r in results:
        assert r['stages'] and set(r['stages'].values()) == {2}, r
        assert r['wall_s'] > 0 and r['peak_rss_mib'] > 0
    assert {'translation_0', 'adaptation_1'} <= set(results[1]['stages'])


def test_a_failing_run_is_reported_not_raised(tmp_path, capsys):
    code = startup_check.main(['--profile', 'smoke', '--methods', 'source_only', '--nets', 'unet', '--targets', 'hand',
                               '--images', '0', '--work-dir', str(tmp_path)])
    assert code == 1 and 'FAILED' in capsys.readouterr().out


@pytest.mark.skipif(not os.environ.get('UDABENCH_PAPER_CHECK'),
                    reason='the paper profile on CPU takes minutes: set UDABENCH_PAPER_CHECK=1')
def test_paper_profile_startup_one_method_per_net(tmp_path):
    assert startup_check.main(['--profile', 'paper', '--methods', 'source_only', '--targets', 'hand',
                               '--work-dir', str(tmp_path)]) == 0


def test_startup_check_passes_overrides_to_every_run(tmp_path, capsys):
    """``--set profile.precision=bf16``: the methods not covered by tests/test_backend.py train in bf16 too."""
    methods = ['bdl', 'dise', 'glss_gan']   # their own steps; CLAN and DADA share AdvEnt's, tested in test_backend.py
    code = startup_check.main(['--profile', 'smoke', '--methods', *methods, '--nets', 'deeplabv3plus', '--targets', 'hand',
                               '--set', 'profile.precision=bf16', '--work-dir', str(tmp_path)])
    printed = capsys.readouterr().out
    assert code == 0 and f'{len(methods)} of {len(methods)} runs passed' in printed, printed
    import json
    for path in (tmp_path / 'runs').rglob('*.json'):
        assert json.loads(path.read_text())['backend']['precision'] == 'bf16', path


def test_a_bad_set_is_refused_before_any_run(capsys):
    with pytest.raises(SystemExit):
        startup_check.main(['--profile', 'smoke', '--methods', 'advent', '--set', 'profile.precision=fp16'])
    assert "profile.precision = 'fp16'" in capsys.readouterr().err
