"""Results that cannot be silently wrong (issue 12): content-keyed stages, exact resume, failure
records, one writer per run. The bad-input cases are in test_bad_inputs.py."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from udabench import engine
from udabench.engine import StageRunner, TrainingDiverged, batch_indices


def _fit(runner, stop_at=None, lr=0.1, poison_at=None):
    """A tiny stage that draws from torch's global RNG (dropout) and numpy's every step."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 1))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    x = torch.randn(20, 3)

    def step(it):
        if stop_at is not None and it == stop_at:
            raise KeyboardInterrupt
        idx = torch.as_tensor(batch_indices(20, 4, it, 0))
        noise = float(np.random.rand())
        loss = model(x[idx] + noise).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if poison_at is not None and it == poison_at:
            with torch.no_grad():
                model[0].weight[0, 0] = float('nan')
        return {'loss': loss.item()}
    runner.run('stage', step, 12, {'model': model, 'opt': opt})
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_a_stage_killed_mid_way_resumes_bit_identical(tmp_path):
    straight = _fit(StageRunner(tmp_path / 'a', checkpoint_every=4, progress=False))
    runner = StageRunner(tmp_path / 'b', checkpoint_every=4, progress=False)
    with pytest.raises(KeyboardInterrupt):
        _fit(runner, stop_at=6)
    torch.rand(100), np.random.rand(100)          # whatever ran in between
    assert torch.equal(straight, _fit(runner))


def test_the_rng_after_a_stage_is_the_same_whether_it_trained_or_was_loaded(tmp_path):
    _fit(StageRunner(tmp_path / 'cache', checkpoint_every=4, progress=False))
    trained = torch.rand(3), np.random.rand(3)
    torch.rand(100), np.random.rand(7)            # a caller that drew before the (now cached) stage
    _fit(StageRunner(tmp_path / 'cache', checkpoint_every=4, progress=False))
    loaded = torch.rand(3), np.random.rand(3)
    assert torch.equal(trained[0], loaded[0]) and np.array_equal(trained[1], loaded[1])


def test_checkpoints_load_with_weights_only(tmp_path, monkeypatch):
    _fit(StageRunner(tmp_path, checkpoint_every=4, progress=False))
    saved = torch.load(tmp_path / 'stage.pth', weights_only=True)
    assert saved['iteration'] == 12 and {'torch', 'numpy', 'python'} <= set(saved['rng'])


def test_a_non_finite_loss_stops_the_stage_without_checkpointing_it(tmp_path):
    runner = StageRunner(tmp_path, checkpoint_every=4, progress=False)
    with pytest.raises(TrainingDiverged) as err:
        _fit(runner, lr=1e30)
    assert err.value.stage == 'stage' and "'loss'" in err.value.value
    if (tmp_path / 'stage.pth').exists():
        assert torch.load(tmp_path / 'stage.pth', weights_only=True)['iteration'] <= err.value.step


def test_a_non_finite_parameter_is_caught_before_the_checkpoint(tmp_path):
    with pytest.raises(TrainingDiverged, match=r'model\.0\.weight') as err:
        _fit(StageRunner(tmp_path, checkpoint_every=4, progress=False), poison_at=7)
    assert err.value.step == 7      # the next checkpoint (iteration 8) is refused
    assert torch.load(tmp_path / 'stage.pth', weights_only=True)['iteration'] == 4


def test_cache_keys_follow_the_data_content_threads_code_and_config():
    from udabench.datasets.base import SegmentationSet
    from udabench.methods.base import FitContext, cached_stages

    def key(images, producer='udabench.methods.base', **key_parts):
        data = SegmentationSet('synth_compaq', images, np.zeros_like(images), 'synthetic', description='same')
        ctx = FitContext(source=data, stages=StageRunner('w', progress=False), cache_dir='c',
                         key_parts={'code_version': 'a', 'threads': 1, 'device': 'cpu', **key_parts})
        return cached_stages(ctx, producer, 'source_unet', {'lr': 1}).work_dir.name

    images = np.zeros((4, 8, 8), np.uint8)
    changed = images.copy()
    changed[0, 0, 0] = 1
    base = key(images)
    assert base == key(images.copy())
    # the calling method's code version does not split a shared stage; the producing module's does
    assert key(images, code_version='b') == base
    assert len({base, key(changed), key(images, threads=2), key(images, producer='udabench.methods.glss')}) == 4


def test_the_code_version_changes_with_any_source_file(tmp_path):
    (tmp_path / 'pkg' / 'sub').mkdir(parents=True)
    (tmp_path / 'pkg' / 'sub' / 'losses.py').write_text('w = 1\n')
    before = engine.hash_sources([tmp_path / 'pkg'])
    (tmp_path / 'pkg' / 'sub' / 'losses.py').write_text('w = 2\n')
    assert engine.hash_sources([tmp_path / 'pkg']) != before
    assert len(engine.code_version('udabench.methods.glss')) == 16


def test_the_code_version_ignores_docstrings_comments_and_layout_but_no_code(tmp_path):
    # A typo fixed in a docstring must not make every committed result "older code".
    module = tmp_path / 'pkg' / 'm.py'
    module.parent.mkdir()

    def version(text):
        module.write_text(text)
        return engine.hash_sources([tmp_path / 'pkg'])
    base = version('"""Module."""\nclass A:\n    """A."""\n    def f(self, x):\n        """Doc."""\n'
                   '        return x * 2  # twice\n\n\nNAME = \'a\'\n')
    for same in ('"""Module,\n\nrewritten."""\nclass A:\n    """B."""\n    def f(self, x):\n'
                 '        \'\'\'Other doc.\'\'\'\n        return x * 2    # three times\n\nNAME = \'a\'\n',
                 'class A:\n    def f(self, x):\n        return x * 2\nNAME = \'a\'\n'):
        assert version(same) == base
    for changed in ('class A:\n    def f(self, x):\n        return x * 3\nNAME = \'a\'\n',
                    'class A:\n    def f(self, x):\n        return x * 2\nNAME = \'b\'\n',           # a string that is data
                    'class A:\n    def f(self, x):\n        y = 1\n        """not a docstring"""\n'
                    '        return x * 2\nNAME = \'a\'\n',
                    'class A:\n    def f(self, x):\n        return x * 2\n    NAME = \'a\'\n'):   # indentation is code
        assert version(changed) != base, changed


def test_the_code_version_ignores_only_code_that_reads_results_or_lists_runs(tmp_path):
    # Configs are not code: they reach a run through its composed config (run key, result file).
    for name in ('runner.py', 'tables.py', 'sweep.py', 'plans/cpu.py', 'configs/methods/advent.py'):
        (tmp_path / 'benchmarks' / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / 'benchmarks' / name).write_text('x = 1\n')
    version = lambda: engine.hash_sources([tmp_path / 'benchmarks'], exclude=engine.NOT_RUN_CODE)  # noqa: E731
    before = version()
    for name in ('tables.py', 'sweep.py', 'plans/cpu.py', 'configs/methods/advent.py'):
        (tmp_path / 'benchmarks' / name).write_text('x = 2\n')
    assert version() == before
    (tmp_path / 'benchmarks' / 'runner.py').write_text('x = 2\n')
    assert version() != before


def test_a_method_s_code_version_covers_its_own_imports_and_the_shared_code_only(tmp_path, monkeypatch):
    files = {'benchmarks/runner.py': 'from udabench.methods.base import f\n', 'benchmarks/tables.py': 'x = 1\n',
             'datasets/synthetic.py': 'x = 1\n', 'methods/__init__.py': 'from . import a, b  # noqa\n',
             'methods/base.py': 'def f(): pass\n', 'methods/a.py': 'def g():\n    from .helper import h\n',
             'methods/helper.py': 'from udabench.methods import base\n', 'methods/b.py': 'from .base import f\n'}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    dirs = {'udabench.engine': 'benchmarks', 'udabench.datasets': 'datasets', 'udabench.methods': 'methods'}
    monkeypatch.setattr(engine, '_package_dir', lambda name: tmp_path / dirs[name])
    assert [p.name for p in engine._method_closure({'a'})] == ['a.py', 'base.py', 'helper.py']  # lazy, nested

    def versions():
        engine.code_version.cache_clear()
        return {m: engine.code_version(f'udabench.methods.{m}') for m in ('a', 'b')}
    try:
        before = versions()
        assert before['a'] != before['b']
        for edit, changed in (('methods/helper.py', {'a'}), ('methods/b.py', {'b'}), ('methods/__init__.py', set()),
                              ('benchmarks/tables.py', set()), ('methods/base.py', {'a', 'b'}),
                              ('datasets/synthetic.py', {'a', 'b'}), ('benchmarks/runner.py', {'a', 'b'})):
            (tmp_path / edit).write_text((tmp_path / edit).read_text() + 'edited = 1\n')
            after = versions()
            assert {m for m in after if after[m] != before[m]} == changed, edit
            before = after
    finally:
        engine.code_version.cache_clear()


def test_methods_init_only_imports_modules():
    # code_version leaves methods/__init__.py out: it must hold nothing a run executes but imports.
    import ast

    import udabench.methods
    tree = ast.parse(Path(udabench.methods.__file__).read_text())
    assert all(isinstance(node, (ast.ImportFrom, ast.Import)) or
               (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in tree.body)


def test_shared_stages_are_keyed_by_the_code_that_trains_them():
    from udabench.engine import _method_closure
    names = lambda m: {p.stem for p in _method_closure({m})}  # noqa: E731
    assert {'bdl', 'translation', 'adaptation', 'base', 'networks', 'losses'} <= names('bdl')
    assert not {'glss', 'vae', 'advent'} & names('bdl')
    assert {'glss', 'gan', 'vae', 'latent_search'} <= names('glss_gan')
    assert names('base') == {'base', 'losses', 'networks', 'backbones'}   # the Source Only network's stage


def test_freed_memory_is_kept_by_glibc():
    assert engine.keep_freed_memory() is True      # glibc here; False (a no-op) elsewhere


def _spec(tmp_path, method='advent', **kwargs):
    from udabench.runner import RunSpec
    root = kwargs.pop('root', tmp_path)
    return RunSpec(method=method, target='hand', profile='smoke', data_root=str(tmp_path / 'no-real-data'),
                   results_dir=str(root / 'runs'), work_dir=str(root / 'work'), synthetic_cache=str(tmp_path / 'synth'),
                   progress=False, **kwargs)


def _metrics(path):
    """Metrics and every stage's first/last logged losses: equal only if training was identical."""
    record = json.loads(path.read_text())
    return record['metrics'], record['training']['summary']


def test_force_after_a_config_change_trains_afresh(tmp_path):
    from udabench.runner import run
    lr = {'method.optimizer.lr': 0.05}
    old = run(_spec(tmp_path, root=tmp_path / 'a'))
    old_record, old_metrics = json.loads(old.read_text()), _metrics(old)
    changed = run(_spec(tmp_path, root=tmp_path / 'a', overrides=lr), force=True)
    fresh = run(_spec(tmp_path, root=tmp_path / 'b', overrides=lr))
    record = json.loads(changed.read_text())
    assert record['stage_keys']['adaptation'] != old_record['stage_keys']['adaptation']
    assert record['stage_keys']['source_deeplabv3plus/segmentation'] == \
        old_record['stage_keys']['source_deeplabv3plus/segmentation']        # the shared cache is reused
    assert _metrics(changed) == _metrics(fresh) != old_metrics
    assert record['code_version'] == engine.code_version('udabench.methods.advent') == engine.method_code_version('advent')


def test_a_result_does_not_depend_on_what_was_cached_before_it(tmp_path):
    from udabench.runner import run
    alone = run(_spec(tmp_path, root=tmp_path / 'a'))
    run(_spec(tmp_path, 'source_only', root=tmp_path / 'b'))        # fills the Source Only cache first
    after_cache = run(_spec(tmp_path, root=tmp_path / 'b'))
    assert _metrics(alone) == _metrics(after_cache)


@pytest.mark.parametrize('stage, at', [('adaptation', 4), ('segmentation', 5)])
def test_a_run_killed_mid_stage_resumes_bit_identical(tmp_path, monkeypatch, stage, at):
    from udabench.runner import run
    settings = {'method.stop_iters': 8, 'profile.checkpoint_every': 3}
    straight = run(_spec(tmp_path, root=tmp_path / 'a', overrides=settings))
    original = StageRunner.run

    def killed(self, name, step, num_iters, state):
        def dying(it):
            if name == stage and it == at:
                raise KeyboardInterrupt
            return step(it)
        return original(self, name, dying, num_iters, state)
    monkeypatch.setattr(StageRunner, 'run', killed)
    with pytest.raises(KeyboardInterrupt):
        run(_spec(tmp_path, root=tmp_path / 'b', overrides=settings))
    monkeypatch.setattr(StageRunner, 'run', original)
    resumed = run(_spec(tmp_path, root=tmp_path / 'b', overrides=settings))
    assert _metrics(straight) == _metrics(resumed)


def test_a_diverged_run_writes_a_failure_record_and_fails_the_command(tmp_path, capsys):
    from tools_run_benchmark import main
    args = ['--method', 'source_only', '--target', 'hand', '--net', 'unet', '--profile', 'smoke',
            '--data-root', str(tmp_path / 'none'), '--results-dir', str(tmp_path / 'runs'),
            '--work-dir', str(tmp_path / 'work'), '--no-progress', '--set', 'seg_recipe.optimizer.lr=1e30']
    assert main(args) == 1
    assert 'diverged' in capsys.readouterr().err
    path = next((tmp_path / 'runs').rglob('*seed0.json'))
    record = json.loads(path.read_text())
    assert record['status'] == 'failed' and record['metrics'] == {}
    assert record['failure']['stage'] == 'source_unet/segmentation' and record['failure']['step'] >= 0
    assert record['method'] == 'source_only' and record['config']['seg_recipe']['optimizer']['lr'] == 1e30
    cache = tmp_path / 'work' / 'cache' / 'source_unet'
    assert not any(torch.load(p, weights_only=True)['iteration'] > record['failure']['step'] for p in cache.rglob('*.pth'))
    assert main(args) == 1           # still failed when skipped


def test_a_sweep_runs_every_point_and_summarises_failures(tmp_path, monkeypatch, capsys):
    import tools_run_benchmark as tool
    done = []

    def fake_run(spec, force=False):
        if spec.seed == 1:
            raise RuntimeError('checkpoint x.pth cannot be read')
        done.append(spec.seed)
        path = tmp_path / f'{spec.seed}.json'
        path.write_text(json.dumps({'status': 'ok', 'method': spec.method, 'target': spec.target, 'net': spec.net,
                                    'profile': spec.profile, 'seed': spec.seed, 'data_source': 'synthetic',
                                    'metrics': {'target_all': {'iou': 0.5, 'dice': 0.6}}}))
        return path
    monkeypatch.setattr(tool, 'run', fake_run)
    code = tool.main(['--method', 'source_only', '--target', 'hand', '--profile', 'smoke', '--seed', '0', '1', '2',
                      '--results-dir', str(tmp_path / 'runs'), '--work-dir', str(tmp_path / 'work')])
    assert code == 1 and done == [0, 2]
    err = capsys.readouterr().err
    assert '1 of 3 runs failed' in err and 'seed 1' in err and 'cannot be read' in err


def test_a_second_process_on_the_same_run_is_refused(tmp_path):
    from udabench.engine import RunLocked, locked
    from udabench.runner import prepare, run
    spec = _spec(tmp_path, 'source_only')
    p = prepare(spec)
    with locked(p.work.with_name(p.run_key + '.lock'), wait=False, what='test'):
        with pytest.raises(RunLocked, match='another process'):
            run(spec)
    assert run(spec).exists()


def test_tables_show_a_failed_cell_as_failed():
    from udabench import tables

    def rec(seed, iou=None):
        r = dict(method='advent', net='unet', target='hand', seed=seed, tag='', study='main', profile='smoke',
                 data_source='synthetic', metrics={} if iou is None else {'target_all': {'iou': iou, 'dice': iou}})
        return r if iou is not None else dict(r, status='failed')
    frame, _ = tables.table2([rec(0)])
    assert frame.loc['AdvEnt', ('Hand Gesture', 'UNet', 'IoU')] == 'failed'
    frame, _ = tables.table2([rec(0, 0.5), rec(1)])
    assert frame.loc['AdvEnt', ('Hand Gesture', 'UNet', 'IoU')] == '0.500 (n=1) (1 failed)'


def test_two_writers_of_one_file_never_share_a_temporary_file(tmp_path, monkeypatch):
    """Two runs rendering the same synthetic cache at once collided on one fixed ``.tmp`` name (the
    second rename found no file). Here a second writer finishes while the first is still writing."""
    from udabench.results import atomic_write
    target = tmp_path / 'cache.npz'

    def first(fh):
        atomic_write(target, lambda other: other.write(b'second'))
        fh.write(b'first')
    atomic_write(target, first)
    assert target.read_bytes() == b'first' and list(tmp_path.iterdir()) == [target]
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()

    import udabench.datasets as data
    written = []
    monkeypatch.setattr(data, 'atomic_write', lambda path, write: written.append(path) or atomic_write(path, write))
    from udabench.registry import DATASETS, lookup
    lookup(DATASETS, 'synth_hand')(size=16, count=4, seed=0, cache_dir=str(tmp_path / 'synth'))
    assert [p.name for p in written] == ['synth_hand_n4_s16_seed0_v1.npz']


def _umask() -> int:
    import os
    mask = os.umask(0)
    os.umask(mask)
    return mask
