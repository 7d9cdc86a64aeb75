import pytest

from udabench.runner import compose_config, parse_overrides


def test_source_only_and_oracle_end_to_end_then_tables(tmp_path, smoke_run):
    record, out = smoke_run('source_only', net='unet')
    assert record['data_source'] == 'synthetic' and record['data']['target']['name'] == 'synth_hand'
    for key in ('config', 'seed', 'git_commit', 'wall_time_s', 'packages', 'metrics', 'machine'):
        assert key in record
    import torch
    assert record['machine']['cpu_capability'] == torch.backends.cpu.get_cpu_capability()   # numbers depend on it
    assert 0.0 <= record['metrics']['target_all']['iou'] <= 1.0
    assert 'synthetic' in str(out)
    summary = record['training']['summary']['source_unet/segmentation']   # the cached network's curve
    assert summary['iterations'] >= 1 and set(summary['loss']) == {'first', 'last'}
    log = (out.parent / record['training']['log']).read_text().splitlines()
    assert log[0].startswith('stage,iteration') and len(log) == 1 + summary['iterations']
    mtime = out.stat().st_mtime
    assert smoke_run('source_only', net='unet')[1] == out and out.stat().st_mtime == mtime   # exists -> skipped
    oracle, _ = smoke_run('oracle', net='unet')
    assert set(oracle['metrics']) == {'target_test'}          # trained on target: held-out split only

    from tools_make_tables import main as make_tables
    assert make_tables(['--results', str(tmp_path / 'runs'), '--out', str(tmp_path / 'tables')]) == 0
    md = (tmp_path / 'tables' / 'smoke_synthetic' / 'table2.md').read_text()
    assert 'Source Only' in md and 'synthetic' in md and '–' in md     # missing cells stay missing
    assert 'UNet' in (tmp_path / 'tables' / 'smoke_synthetic' / 'table1.md').read_text()


def test_unknown_names_list_what_is_registered(smoke_run):
    with pytest.raises(KeyError, match='source_only'):
        smoke_run('nope')
    with pytest.raises(KeyError, match='deeplabv3plus'):
        compose_config('source_only', 'resnet9000', 'smoke')
    with pytest.raises(KeyError, match='cpu'):
        compose_config('source_only', 'unet', 'huge')


def test_overrides_parse_literals():
    assert parse_overrides(['a.b=1e-3', 'c=foo', 'd=[1, 2]']) == {'a.b': 1e-3, 'c': 'foo', 'd': [1, 2]}
    with pytest.raises(ValueError, match='key=value'):
        parse_overrides(['oops'])


def test_a_misspelt_method_key_is_named(smoke_run):
    with pytest.raises(KeyError, match="'method' has no key 'lamda_adv'"):
        smoke_run('advent', overrides={'method.lamda_adv': 1.0})


def test_source_network_does_not_depend_on_the_caller_rng(tmp_path):
    """The cached Source Only network is shared by every method: it must be the same whoever trains it."""
    import dataclasses

    import torch

    from udabench.methods.base import source_network
    from udabench.runner import RunSpec, prepare

    spec = RunSpec(method='source_only', target='hand', profile='smoke', data_root=str(tmp_path / 'none'),
                   work_dir=str(tmp_path / 'work'), synthetic_cache=str(tmp_path / 'synth'), progress=False)
    weights = []
    for caller_draws in (0, 1000):
        ctx = prepare(spec).ctx
        ctx = dataclasses.replace(ctx, cache_dir=tmp_path / f'cache{caller_draws}')
        torch.rand(caller_draws)          # a method's own networks consume the global RNG first
        weights.append(source_network(ctx).state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_run_benchmark_on_an_existing_result_prints_its_numbers(tmp_path, monkeypatch, capsys):
    import json

    import tools_run_benchmark
    path = tmp_path / 'hand_unet_seed2.json'
    path.write_text(json.dumps(dict(
        method='source_only', target='hand', net='unet', profile='cpu', seed=2, tag='', data_source='synthetic',
        git_commit='0123abc', finished='2026-11-23T20:00:00+0000',
        metrics={'target_all': {'iou': 0.41234, 'dice': 0.5839}, 'target_test': {'iou': 0.4, 'dice': 0.57}})))
    monkeypatch.setattr(tools_run_benchmark, 'run', lambda spec, force=False: path)   # "exists: skipped"
    assert tools_run_benchmark.main(['--method', 'source_only', '--target', 'hand', '--net', 'unet',
                                     '--seed', '2']) == 0
    out = capsys.readouterr().out
    for text in ('target_all: IoU 0.4123  Dice 0.5839', 'seed 2', '0123abc', 'data: synthetic', str(path)):
        assert text in out, out
