"""Plans, shards, dry runs and the submitit launchers (local, slurm without a cluster, requeue)."""
import json
import os
import stat
from pathlib import Path

import pytest

from udabench import sweep
from udabench.runner import RunSpec, grid_points, compose_config


def _paths(tmp_path):
    return dict(data_root=str(tmp_path / 'no-real-data'), results_dir=str(tmp_path / 'runs'),
                work_dir=str(tmp_path / 'work'), synthetic_cache=str(tmp_path / 'synth'))


def _cli(tmp_path, *args):
    p = _paths(tmp_path)
    return ['--data-root', p['data_root'], '--results-dir', p['results_dir'], '--work-dir', p['work_dir'],
            '--synthetic-cache', p['synthetic_cache'], '--tables', str(tmp_path / 'tables'), *args]


def test_cpu_plan_lists_every_run_behind_every_table():
    runs = sweep.expand(sweep.load_plan('cpu'))
    keys = [sweep.run_key(s) for s in runs]
    assert len(keys) == len(set(keys))
    seeds, grid = 3, {m: len(grid_points(compose_config(m, 'deeplabv3plus', 'cpu')))
                      for m in ('adaptsegnet', 'glss_ablation', 'glss_ls_study', 'dada', 'bdl', 'dise',
                                'cosine_similarity', 'depth_distribution')}
    other_grids = ('dada', 'bdl', 'dise', 'cosine_similarity', 'depth_distribution')
    # a main-study grid's point equal to the default configuration is the Table 2 run itself (- 1)
    expected = {'Table 1': 5 * 2, 'Table 2': 8 * 2 * 2 + 3 * 2, 'AdaptSegNet grid': (grid['adaptsegnet'] - 1) * 2,
                'other grids': sum(grid[m] - 1 for m in other_grids) * 2,
                'Table 4': grid['glss_ablation'] * 2, 'Fig. 5': grid['glss_ls_study'] * 2,
                'fraction': 6 * 3, 'controls': 6 * 2 * 2 * 3 + 2 * 2, 'GAN vs VAE': 2, 'Table 3': 12}
    assert grid['glss_ablation'] == 8 and grid['dada'] == 9 and len(runs) == seeds * sum(expected.values())
    assert {s.seed for s in runs} == {0, 1, 2} and {s.profile for s in runs} == {'cpu'}
    frac = [s for s in runs if s.study == 'fraction']
    assert {s.overrides['method.target_fraction'] for s in frac} == {0.6, 0.4, 0.2}
    assert {s.tag for s in frac if s.method == 'bdl'} == {'f0.6', 'f0.4', 'f0.2'}
    assert any(s.method == 'glss_ablation' and s.overrides['method.vae.edge_skip'] is False for s in runs)
    assert {s.tag for s in runs if s.study == 'controls'} == {'finetune', 'positive_f0.2', 'positive_f1.0'}
    assert {s.method for s in runs if s.target == 'cityscapes'} == {'source_only', 'oracle', 'adaptsegnet', 'advent',
                                                                    'clan', 'dada', 'bdl', 'dise', 'glss',
                                                                    'cosine_similarity', 'depth_distribution',
                                                                    'unsup_backprop'}


def test_a_grid_point_equal_to_a_planned_default_run_is_that_run(tmp_path):
    plan = tmp_path / 'plan.py'
    default = "dict(methods=['bdl'], nets=['unet'], targets=['hand'])"
    grid = "dict(methods=['bdl'], nets=['unet'], targets=['hand'], grid=True)"
    plan.write_text(f"profile = 'smoke'\nseeds = [0, 1]\ngroups = [{grid}]\n")
    alone = sweep.expand(sweep.load_plan(str(plan)))
    assert sorted({s.tag for s in alone}) == ['lambda_adv_target=0.001', 'lambda_adv_target=0.002',
                                              'lambda_adv_target=0.005'] and len(alone) == 6
    assert compose_config('bdl', 'unet', 'smoke').method.lambda_adv_target == 0.001          # the default point
    plan.write_text(f"profile = 'smoke'\nseeds = [0, 1]\ngroups = [{default}, {grid}]\n")
    both = sweep.expand(sweep.load_plan(str(plan)))
    assert [(s.tag, s.seed) for s in both] == [('', 0), ('', 1), ('lambda_adv_target=0.002', 0),
                                               ('lambda_adv_target=0.005', 0), ('lambda_adv_target=0.002', 1),
                                               ('lambda_adv_target=0.005', 1)]
    plan.write_text(f"profile = 'smoke'\nseeds = [0, 1]\ngroups = [{grid}, {default}]\n")   # in either order
    assert sorted((s.tag, s.seed) for s in sweep.expand(sweep.load_plan(str(plan)))) == sorted((s.tag, s.seed) for s in both)


def test_a_group_may_name_the_controls_it_runs(tmp_path):
    plan = tmp_path / 'plan.py'
    group = "dict(methods=['advent'], nets=['unet'], targets=['hand'], study='controls', controls={})"
    plan.write_text(f"profile = 'smoke'\nseeds = [0]\ngroups = [{group.format(['finetune'])}]\n")
    assert [s.tag for s in sweep.expand(sweep.load_plan(str(plan)))] == ['finetune']
    plan.write_text(f"profile = 'smoke'\nseeds = [0]\ngroups = [{group.format(True)}]\n")
    assert [s.tag for s in sweep.expand(sweep.load_plan(str(plan)))] == ['finetune', 'positive_f0.2', 'positive_f1.0']
    plan.write_text(f"profile = 'smoke'\nseeds = [0]\ngroups = [{group.format(['finetun'])}]\n")
    with pytest.raises(ValueError, match="advent: no control named \\['finetun'\\]"):
        sweep.expand(sweep.load_plan(str(plan)))


def test_the_local_launcher_starts_runs_of_another_seed_beside_a_running_one():
    """Two runs of one seed and net would share (and wait on) one cached stage; the next job started
    beside a running one is the first of another seed, and the queue's order holds otherwise."""
    jobs = [sweep.RunJob(RunSpec(method='glss_ablation', target=t, seed=s, tag=tag))
            for t in ('hand', 'snv') for s in (0, 1) for tag in ('a', 'b')]
    assert sweep.next_job_index(jobs, []) == 0
    assert sweep.next_job_index(jobs[1:], [jobs[0]]) == 1            # hand seed 1, not hand seed 0 'b'
    assert sweep.next_job_index(jobs[4:], [jobs[0], jobs[2]]) == 0   # every family busy: the first
    unet = sweep.RunJob(RunSpec(method='glss', target='hand', seed=0, net='unet'))
    assert sweep.next_job_index([jobs[1], unet], [jobs[0]]) == 1     # another net: its own stages


def test_a_sweep_may_select_the_groups_of_some_tables():
    runs = sweep.expand(sweep.load_plan('cpu'), tables=['Fig. 5', 'Table 4'])
    assert {s.method for s in runs} == {'glss_ls_study', 'glss_ablation'}
    with pytest.raises(ValueError, match=r"no group for \['Table 9'\].*Table 4"):
        sweep.expand(sweep.load_plan('cpu'), tables=['Table 9'])


def test_selecting_tables_plans_only_runs_of_the_whole_plan():
    """A grid point whose config is a default run's, planned by another group, is made by that run
    also when only the grid's table is selected: no tagged twin of the default run (which the whole
    plan would never make, and the tables would then hold twice)."""
    plan = sweep.load_plan('cpu')
    whole = {sweep.run_key(s) for s in sweep.expand(plan)}
    grids = sweep.expand(plan, tables=['Table 2 (grids, seed 000 §2.2)'])
    assert {sweep.run_key(s) for s in grids} <= whole
    assert {(s.method, s.target, s.seed) for s in grids if not s.tag} == {
        (m, t, seed) for m in ('dada', 'bdl', 'dise', 'cosine_similarity', 'depth_distribution')
        for t in ('hand', 'snv') for seed in (0, 1, 2)}          # each default point: the default run
    per_table = [sweep.expand(plan, tables=[t]) for t in {g.get('table', '') for g in plan.groups}]
    assert set().union(*({sweep.run_key(s) for s in runs} for runs in per_table)) == whole


def test_shards_partition_a_plan_by_run_key_whatever_its_order():
    runs = sweep.expand(sweep.load_plan('cpu'))
    shards = [sweep.shard(runs, i, 3) for i in range(3)]
    assert sorted(sweep.run_key(s) for part in shards for s in part) == sorted(sweep.run_key(s) for s in runs)
    assert all(len(part) > len(runs) // 5 for part in shards)
    assert [sweep.run_key(s) for s in sweep.shard(runs[::-1], 1, 3)] == [sweep.run_key(s) for s in shards[1]][::-1]
    with pytest.raises(ValueError, match='--shard'):
        sweep.shard(runs, 3, 3)


def test_unknown_plan_and_bad_group_are_named(tmp_path):
    with pytest.raises(KeyError, match='cpu'):
        sweep.load_plan('nope')
    bad = tmp_path / 'bad.py'
    bad.write_text("profile = 'smoke'\nseeds = [0]\ngroups = [dict(methods=['source_only'], nets=['unet'], "
                   "targets=['hand'], seed=[1])]\n")
    with pytest.raises(ValueError, match=r"bad\.py, group 0.*seed"):
        sweep.load_plan(str(bad))


def test_dry_run_estimates_cpu_time_from_earlier_result_files(tmp_path, capsys):
    from tools_sweep import main
    earlier = tmp_path / 'runs' / 'smoke' / 'synthetic' / 'source_only' / 'old.json'
    earlier.parent.mkdir(parents=True)
    earlier.write_text(json.dumps(dict(method='source_only', net='unet', profile='smoke', threads=2,
                                       wall_time_s=dict(fit=9.0, total=10.0))))
    assert main(_cli(tmp_path, '--plan', 'smoke', '--dry-run', '--cores', '2')) == 0
    out = capsys.readouterr().out
    assert out.count('20 CPU-s') == 3 and 'smoke/main/source_only/hand/unet/seed1' in out
    assert '3 of 3 runs to make' in out and '60 CPU-s' in out
    assert not (tmp_path / 'work').exists()                     # nothing ran


def test_a_run_is_pending_for_a_reason_the_dry_run_names(tmp_path, capsys):
    """A result file made by other code (another ``code_version``) or from another composed config
    is re-made, and ``--dry-run`` says which of the two each pending run is."""
    from udabench.engine import method_code_version
    from tools_sweep import main
    runs = sweep.expand(sweep.load_plan('smoke'), **_paths(tmp_path))
    assert sweep.why_pending(runs[0]) == 'no result file'
    for spec, code, config in ((runs[0], method_code_version('source_only'), None), (runs[1], 'older', None),
                               (runs[2], method_code_version('source_only'), {'method': {'type': 'source_only'}})):
        path = sweep.expected_result(spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dict(metrics={'target_all': {'iou': 0.5}}, code_version=code, threads=1,
                                        config=config or sweep.expected_config(spec))))
    assert [sweep.why_pending(s) for s in runs[:3]] == ['', 'older code', 'other config']
    sweep.expected_result(runs[0]).write_text('{"metr')
    assert sweep.why_pending(runs[0]) == 'unfinished'
    assert main(_cli(tmp_path, '--plan', 'smoke', '--dry-run')) == 0
    out = capsys.readouterr().out
    assert f'{sweep.run_key(runs[1])}' in out and '(older code)' in out and '(other config)' in out
    assert '3 of 3 runs to make (0 finished; 1 unfinished; 1 older code; 1 other config)' in out


def test_a_sweep_names_the_result_files_made_on_another_kind_of_cpu(tmp_path, capsys):
    """Runs made here pair with none made on another CPU kind (``tables.cpu_kind``), so a dry run and a
    sweep say so before anything is made, counting the files per kind."""
    from udabench.results import machine
    from tools_sweep import main
    runs = sweep.expand(sweep.load_plan('smoke'), **_paths(tmp_path))
    for spec, made_on in zip(runs, (machine(), {'cpu': 'Other CPU', 'cpu_capability': 'AVX2'}, None)):
        path = sweep.expected_result(spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dict(metrics={'target_all': {'iou': 0.5}}, code_version='older', machine=made_on)))
    note = sweep.other_cpu_kinds_note(runs)
    assert '2 of the plan\'s 3 result files' in note and '1 on Other CPU (AVX2)' in note and '1 on unrecorded' in note
    assert sweep.other_cpu_kinds_note(runs[:1]) == ''
    assert main(_cli(tmp_path, '--plan', 'smoke', '--dry-run')) == 0
    assert note in capsys.readouterr().out


def _on_cpu(monkeypatch, name):
    """Make this machine, as the sweep and the result files see it, a CPU called ``name``."""
    import udabench.results
    for module in (udabench.results, sweep):
        monkeypatch.setattr(module, 'machine', lambda: {'cpu': name, 'cpu_capability': 'AVX2', 'cores': 2})


def test_a_run_on_another_kind_of_cpu_trains_its_stages_again(tmp_path, monkeypatch):
    """A work folder outlives its machine (a persistent disk, a cluster of mixed nodes), and a stage
    trained on one kind of CPU is another network on another (``tables.cpu_kind``). A sweep's job and
    ``run_benchmark`` keep stages and caches per CPU kind, chosen where the run executes: a run here
    must not resume or reuse a network made elsewhere and record it as made here."""
    from tools_run_benchmark import main as run_benchmark
    spec = dict(method='source_only', target='hand', net='unet', profile='smoke', progress=False)
    for cpu, results in (('CPU A', 'runs_a'), ('CPU B', 'runs_b')):       # each kind its own results dir
        _on_cpu(monkeypatch, cpu)
        paths = dict(_paths(tmp_path), results_dir=str(tmp_path / results))
        [(_, outcome)] = sweep.launch([RunSpec(**spec, **paths)], 'debug', tmp_path / 'log', threads=1, timeout_min=5)
        assert not isinstance(outcome, Exception), outcome
    trained = sorted(p.relative_to(tmp_path / 'work').parts[0] for p in (tmp_path / 'work').rglob('segmentation.pth'))
    assert trained == ['CPU_A_AVX2', 'CPU_B_AVX2']
    _on_cpu(monkeypatch, 'CPU C')
    assert run_benchmark(['--method', 'source_only', '--target', 'hand', '--net', 'unet', '--profile', 'smoke',
                          '--no-progress', '--data-root', str(tmp_path / 'no-real-data'),
                          '--results-dir', str(tmp_path / 'runs_c'), '--work-dir', str(tmp_path / 'work')]) == 0
    assert (tmp_path / 'work' / 'CPU_C_AVX2').is_dir()


def test_dry_run_sums_recorded_and_estimated_cpu_time_per_table(tmp_path, capsys):
    """What each table costs: per plan table its runs, those to make, the CPU time its result files
    recorded (finished or not) and the estimate for the rest. A run counts under the first group that
    plans it, so a grid point made by a default run counts under the default run's table, once."""
    from tools_sweep import main
    plan = tmp_path / 'plan.py'
    plan.write_text("profile = 'smoke'\nseeds = [0, 1]\ngroups = ["
                    "dict(table='Main', methods=['bdl'], nets=['unet'], targets=['hand']), "
                    "dict(table='Grid', methods=['bdl'], nets=['unet'], targets=['hand'], grid=True)]\n")
    owned = sweep.expand_by_table(sweep.load_plan(str(plan)), **_paths(tmp_path))
    assert [(table, s.tag) for table, s in owned][:2] == [('Main', ''), ('Main', '')] and len(owned) == 6
    assert {table for table, s in owned if s.tag} == {'Grid'}
    specs = [s for _, s in owned]
    assert [sweep.run_key(s) for s in specs] == [sweep.run_key(s) for s in sweep.expand(sweep.load_plan(str(plan)),
                                                                                        **_paths(tmp_path))]
    for spec, seconds, threads, finished in ((specs[0], 1800.0, 2, True), (specs[2], 720.0, 1, False)):
        path = sweep.expected_result(spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = dict(method='bdl', net='unet', target='hand', study='main', profile='smoke', threads=threads,
                      wall_time_s=dict(total=seconds), code_version='older', config=sweep.expected_config(spec))
        path.write_text(json.dumps(dict(record, metrics={'target_all': {'iou': 0.5}} if finished else {})))
    assert main(_cli(tmp_path, '--plan', str(plan), '--dry-run')) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines if line.split()[:1] in (['Main'], ['Grid'], ['all'])}
    # runs, to make, recorded CPU-h, estimated CPU-h to make (each pending run: the mean of the two files)
    assert rows['Main'] == ['2', '2', '1.00', '1.20']     # 1800 s x 2 threads; 2 x (3600 + 720) / 2 s
    assert rows['Grid'] == ['4', '4', '0.20', '2.40']     # the unfinished file's 720 s counts as recorded
    assert rows['all'] == ['6', '6', '1.20', '3.60']
    assert lines[-1].startswith('6 of 6 runs to make')     # the totals stay the last line


def test_dry_run_estimate_prefers_the_same_target_and_study_then_falls_back_to_other_nets(tmp_path):
    def result(name, seconds, **fields):
        path = tmp_path / 'runs' / f'{name}.json'
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dict(profile='cpu', threads=1, wall_time_s=dict(total=seconds), **fields)))
    result('a', 2000.0, method='glss', net='unet', target='hand', study='main')
    result('b', 300.0, method='glss', net='unet', target='snv', study='main')
    result('c', 50.0, method='oracle', net='unet', target='hand', study='main')
    result('d', 70.0, method='oracle', net='deeplabv3plus', target='hand', study='main')
    spec = lambda method, net, target, study='main': RunSpec(method=method, target=target, net=net, profile='cpu',
                                                            study=study)
    todo = [spec('glss', 'unet', 'snv'), spec('glss', 'unet', 'hand', 'fraction'), spec('oracle', 'fpn', 'snv'),
            spec('bdl', 'unet', 'hand')]
    lines = sweep.dry_run_report(todo, todo, tmp_path / 'runs', cores=2, threads=1).splitlines()
    assert lines[0].endswith('300 CPU-s')                      # SNV's own runs, not the mean with hand's
    assert lines[1].endswith('1150 CPU-s ~net')                # another study: the method on this net
    assert lines[2].endswith('60 CPU-s ~method')               # a net never run: the method on other nets
    assert lines[3].endswith('? CPU-s')
    assert 'estimated 1510 CPU-s' in lines[-1] and '1 run(s) have no earlier result' in lines[-1]
    assert '~net: 1, ~net×: 0, ~method: 1' in lines[-1]


def test_dry_run_estimate_for_a_net_the_method_never_ran_scales_its_other_nets_by_the_net_cost_ratio(tmp_path):
    runs = tmp_path / 'runs'
    runs.mkdir()
    for i, (method, net, seconds) in enumerate([('dise', 'deeplabv3plus', 240.0),
                                                ('advent', 'deeplabv3plus', 60.0), ('advent', 'unet', 180.0),
                                                ('clan', 'deeplabv3plus', 50.0), ('clan', 'unet', 100.0),
                                                ('bdl', 'deeplabv3plus', 200.0), ('bdl', 'unet', 500.0),
                                                ('oracle', 'unet', 40.0)]):
        (runs / f'{i}.json').write_text(json.dumps(dict(profile='cpu', threads=1, wall_time_s=dict(total=seconds),
                                                        method=method, net=net, target='hand', study='main')))
    spec = lambda method, net: RunSpec(method=method, target='snv', net=net, profile='cpu', study='main')
    todo = [spec('dise', 'unet'), spec('oracle', 'deeplabv3plus')]
    lines = sweep.dry_run_report(todo, todo, runs, cores=2, threads=1).splitlines()
    assert lines[0].endswith('600 CPU-s ~net×')         # 240 x median(3, 2, 2.5), not DeepLabv3+'s 240
    assert lines[1].endswith('16 CPU-s ~net×')          # 40 x median(1/3, 1/2, 1/2.5)
    assert '~net: 0, ~net×: 2, ~method: 0' in lines[-1]


def test_local_sweep_writes_every_result_then_submits_nothing(tmp_path, capsys):
    from tools_sweep import main
    assert main(_cli(tmp_path, '--plan', 'smoke', '--launcher', 'local', '--cores', '2', '--timeout-min', '5')) == 0
    plan = sweep.expand(sweep.load_plan('smoke'), **_paths(tmp_path))
    results = [sweep.expected_result(s) for s in plan]
    assert len(results) == 3 and all(p.exists() for p in results)
    assert {json.loads(p.read_text())['threads'] for p in results} == {1}
    table2 = (tmp_path / 'tables' / 'smoke_synthetic' / 'table2.md').read_text()
    assert 'Source Only' in table2 and ' ± ' in table2 and '(n=' not in table2      # three seeds: mean ± std
    jobs = set(os.listdir(tmp_path / 'work' / 'sweep' / 'smoke'))
    capsys.readouterr()
    assert main(_cli(tmp_path, '--plan', 'smoke', '--launcher', 'local', '--cores', '2')) == 0
    assert '0 of 3 runs to make' in capsys.readouterr().out
    assert set(os.listdir(tmp_path / 'work' / 'sweep' / 'smoke')) == jobs      # no job submitted
    # A result made by other code, with another thread count or under another config default
    # (configs are not in the code version) is stale: pending again.
    stale, other_threads, old_config = (json.loads(p.read_text()) for p in results)
    results[0].write_text(json.dumps(dict(stale, code_version='0' * 16)))
    results[1].write_text(json.dumps(dict(other_threads, threads=2)))
    assert main(_cli(tmp_path, '--plan', 'smoke', '--dry-run')) == 0
    assert '2 of 3 runs to make' in capsys.readouterr().out
    old_config['config']['profile']['seg_epochs'] += 1
    results[2].write_text(json.dumps(old_config))
    assert main(_cli(tmp_path, '--plan', 'smoke', '--dry-run')) == 0
    assert '3 of 3 runs to make' in capsys.readouterr().out


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for proc in Path('/proc').iterdir():
        try:
            if proc.name.isdigit() and text in (proc / 'cmdline').read_bytes().decode(errors='replace'):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.mark.parametrize('started_in_background', [False, True])
def test_stopping_a_local_sweep_stops_its_jobs(tmp_path, started_in_background):
    """A SIGTERM (or Ctrl-C) to a local sweep must stop its jobs, also in the middle of training, or
    they keep running and hold their runs' locks. A sweep started with ``&`` from a script inherits
    SIGINT ignored, and so do its jobs: submitit's cancel (a SIGINT) then does nothing."""
    import signal
    import subprocess
    import sys
    import time
    tool = Path(__file__).resolve().parents[1] / 'tools' / 'sweep.py'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    plan = tmp_path / 'long.py'      # one run long enough to be stopped
    plan.write_text("profile = 'smoke'\nseeds = [0]\ngroups = [dict(methods=['source_only'], nets=['unet'], "
                    "targets=['hand'], variants=[dict(tag='long', set={'profile.seg_epochs': 1000})])]\n")
    ignore_sigint = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if started_in_background else None
    sweep_proc = subprocess.Popen([sys.executable, str(tool), *_cli(tmp_path, '--plan', str(plan), '--cores', '2')],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=ignore_sigint)
    job_dir = str(tmp_path / 'work' / 'sweep' / 'long')
    deadline = time.time() + 60
    while not _processes_mentioning(job_dir) and time.time() < deadline:
        time.sleep(0.2)
    assert _processes_mentioning(job_dir), 'no job started within 60 s'
    # Stop it while it trains: a job that is past its start takes submitit's cancel as a preemption.
    while not list((tmp_path / 'work').rglob('segmentation.pth')) and time.time() < deadline:
        time.sleep(0.2)
    assert list((tmp_path / 'work').rglob('segmentation.pth')), 'no checkpoint within 60 s'
    sweep_proc.send_signal(signal.SIGTERM)
    sweep_proc.wait(timeout=30)
    deadline = time.time() + 20
    while _processes_mentioning(job_dir) and time.time() < deadline:
        time.sleep(0.2)
    assert not _processes_mentioning(job_dir)


@pytest.mark.skipif(not os.environ.get('UDABENCH_SLOW_TESTS'),
                    reason='slow (about a minute: two attempts of a subprocess run plus the uninterrupted run); '
                           'set UDABENCH_SLOW_TESTS=1 to run it')
def test_a_timed_out_run_is_requeued_and_ends_as_an_uninterrupted_one(tmp_path):
    """submitit's short-timeout pattern: the local executor signals the job ``signal_delay_s`` before
    its 20 s limit, ``RunJob`` (a Checkpointable) is resubmitted and the requeued job resumes from the
    stage checkpoints (one per iteration here, so every attempt makes progress)."""
    overrides = {'profile.checkpoint_every': 1, 'profile.seg_epochs': 100}   # well over one 20 s attempt
    spec = RunSpec(method='source_only', target='hand', net='unet', profile='smoke', overrides=overrides,
                   progress=False, **_paths(tmp_path / 'a'))
    [(_, outcome)] = sweep.launch([spec], 'local', tmp_path / 'log', threads=1, timeout_min=20 / 60,
                                  max_requeues=5, poll_s=0.2, signal_delay_s=5)
    assert not isinstance(outcome, Exception), outcome
    logs = ''.join(p.read_text() for p in (tmp_path / 'log').rglob('*.out'))
    assert 'Requeued job' in logs and logs.count('Loading pickle') >= 2         # interrupted, then resumed
    alone = RunSpec(**{**spec.__dict__, **_paths(tmp_path / 'b')})
    [(_, uninterrupted)] = sweep.launch([alone], 'debug', tmp_path / 'log2', threads=1, timeout_min=10)
    assert outcome['metrics'] == uninterrupted['metrics']      # checkpoints carry the RNG states


def test_slurm_array_sbatch_script(tmp_path, monkeypatch):
    """Without a cluster: fake srun/sbatch on PATH; sbatch keeps the script submitit wrote."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    for name, body in (('srun', 'exit 0'),
                       ('sbatch', f'cp "$1" {tmp_path}/submitted.sh; echo "Submitted batch job 4242"')):
        (bin_dir / name).write_text(f'#!/bin/sh\n{body}\n')
        (bin_dir / name).chmod(stat.S_IRWXU)
    monkeypatch.setenv('PATH', f'{bin_dir}:{os.environ["PATH"]}')
    specs = sweep.expand(sweep.load_plan('smoke'), **_paths(tmp_path))
    jobs = sweep.launch(specs, 'slurm', tmp_path / 'log', threads=2, timeout_min=90, max_requeues=4,
                        slurm=dict(array_parallelism=2, partition='cpu'), wait=False)
    assert [j.job_id for _, j in jobs] == [f'4242_{i}' for i in range(3)]
    script = (tmp_path / 'submitted.sh').read_text()
    for line in ('#SBATCH --array=0-2%2', '#SBATCH --time=90', '#SBATCH --signal=USR2@60',
                 '#SBATCH --cpus-per-task=2', '#SBATCH --partition=cpu', 'export OMP_NUM_THREADS=2'):
        assert line in script, script
    assert 'submitit.core._submit' in script
