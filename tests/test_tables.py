"""Table specs on hand-made result records: each value lands in its cell, missing ones stay missing."""
import pytest

from udabench.tables import (FRACTION_REFERENCE, MISSING, fig5_table, fraction_table, ls_curves, ls_paired_differences,
                             markdown_rows, plot_ls_curves, render, seed_table, table2, table4, t_interval)


def record(method, target, iou, net='deeplabv3plus', seed=0, study='main', overrides=None, method_cfg=None):
    return dict(method=method, target=target, net=net, seed=seed, study=study, tag='', overrides=overrides or {},
                config={'method': method_cfg or {}}, metrics={'target_all': {'iou': iou, 'dice': iou}})


def test_table4_puts_each_ablation_point_in_its_row():
    on = {'method.vae.edge_skip': True, 'method.perceptual': True, 'method.latent_search.enabled': True}
    no_ls = {**on, 'method.latent_search.enabled': False}
    frame = table4([record('glss_ablation', 'hand', 0.7, study='ablation', overrides=on),
                    record('glss_ablation', 'snv', 0.4, study='ablation', overrides=no_ls)])
    full = frame[(frame.Edge == 'x') & (frame.L_p == 'x') & (frame.LS == 'x')].iloc[0]
    assert full['Hand Gesture IoU'] == '0.700 (n=1)' and full['SNV IoU'] == MISSING
    assert frame[(frame.Edge == 'x') & (frame.L_p == 'x') & (frame.LS == '')].iloc[0]['SNV IoU'] == '0.400 (n=1)'
    assert len(frame) == 8


def test_table4_pairs_each_reduced_model_with_the_full_one_of_the_same_seed():
    on = {'method.vae.edge_skip': True, 'method.perceptual': True, 'method.latent_search.enabled': True}
    no_edge = {**on, 'method.vae.edge_skip': False}
    runs = [record('glss_ablation', 'hand', iou, seed=seed, study='ablation', overrides=point)
            for point, ious in ((on, (0.70, 0.50, 0.60)), (no_edge, (0.60, 0.45, 0.40))) for seed, iou in enumerate(ious)]
    frame = table4(runs)
    row = frame[(frame.Edge == '') & (frame.L_p == 'x') & (frame.LS == 'x')].iloc[0]
    expected = t_interval([-0.10, -0.05, -0.20])                       # per seed: no edge − full
    assert row['Hand Gesture − full'] == f"{expected['mean']:+.3f} [{expected['low']:+.3f}, {expected['high']:+.3f}]"
    assert abs(expected['mean'] + 0.35 / 3) < 1e-12
    assert frame[(frame.Edge == 'x') & (frame.L_p == 'x') & (frame.LS == 'x')].iloc[0]['Hand Gesture − full'] == ''
    assert row['SNV − full'] == MISSING


def _ls_record(loss, seed, ious):
    r = record('glss_ls_study', 'snv', ious[-1], seed=seed, study='ls_iterations',
               method_cfg={'latent_search': {'loss': loss}})
    r['metrics']['trace'] = {f'ls_{10 * i:04d}': {'iou': v, 'dice': v} for i, v in enumerate(ious)}
    return r


def test_fig5_table_gives_each_objective_per_iteration_and_ssim_minus_the_others():
    runs = [_ls_record('ssim', 0, (0.3, 0.5)), _ls_record('ssim', 1, (0.2, 0.4)),
            _ls_record('mse', 0, (0.3, 0.45)), _ls_record('mse', 1, (0.2, 0.30)), _ls_record('mae', 0, (0.3, 0.6))]
    frame = fig5_table(runs)
    assert list(frame.index) == [0, 10]
    assert frame.loc[10, ('SNV', 'SSIM')] == '0.450 ± 0.071 (n=2)' and frame.loc[10, ('SNV', 'MAE')] == '0.600 (n=1)'
    d = t_interval([0.05, 0.10])                                       # seeds 0, 1 at iteration 10
    assert frame.loc[10, ('SNV', 'SSIM − MSE')] == f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] (n=2)"
    assert frame.loc[10, ('SNV', 'SSIM − MAE')] == '-0.100 (n=1)'      # only seed 0 has both
    assert frame.loc[0, ('SNV', 'SSIM − MSE')].startswith('+0.000')
    assert fig5_table([]).empty


def test_fig5_paired_differences_pair_runs_of_one_seed_and_the_plot_draws_them(tmp_path):
    runs = [_ls_record('ssim', 0, (0.3, 0.5)), _ls_record('ssim', 1, (0.2, 0.4)),
            _ls_record('mse', 0, (0.3, 0.45)), _ls_record('mse', 1, (0.2, 0.30)), _ls_record('mae', 0, (0.3, 0.6))]
    paired = ls_paired_differences(ls_curves(runs)).set_index(['other', 'iteration'])
    d = t_interval([0.05, 0.10])                                       # SSIM − MSE at 10, seeds 0 and 1
    assert paired.loc[('mse', 10), ['n', 'mean', 'low', 'high']].tolist() == pytest.approx([2, d['mean'], d['low'], d['high']])
    assert paired.loc[('mae', 10), 'mean'] == pytest.approx(-0.1) and paired.loc[('mae', 10), 'n'] == 1
    plot_ls_curves(ls_curves(runs), tmp_path / 'fig5.png', 'Fig. 5')
    assert (tmp_path / 'fig5.png').stat().st_size > 0


def test_fraction_table_rows_per_fraction():
    frame = fraction_table([record('dada', 'snv', 0.3, study='fraction', method_cfg={'target_fraction': 0.4}),
                            record('glss', 'snv', 0.5, study='fraction', method_cfg={'target_fraction': 0.4})])
    row = frame.loc[('SNV', 'DeepLabv3+', '40 %')]
    assert row['DADA'] == '0.300 (n=1)' and row['GLSS'] == '0.500 (n=1)' and row['BDL'] == MISSING
    assert frame.loc[('SNV', 'DeepLabv3+', '60 %')]['DADA'] == MISSING


def test_fraction_table_reference_row_is_the_untagged_table2_run():
    grid_point = {**record('dada', 'snv', 0.9), 'tag': 'lambda_seg=0.5'}
    frame = fraction_table([record('dada', 'snv', 0.3, study='fraction', method_cfg={'target_fraction': 0.4}),
                            record('dada', 'snv', 0.35), grid_point, record('glss', 'hand', 0.6)])
    assert frame.loc[('SNV', 'DeepLabv3+', FRACTION_REFERENCE)]['DADA'] == '0.350 (n=1)'
    assert frame.loc[('SNV', 'DeepLabv3+', FRACTION_REFERENCE)]['GLSS'] == MISSING   # other target
    assert frame.loc[('SNV', 'DeepLabv3+', f'40 % − {FRACTION_REFERENCE}')]['DADA'] == '-0.050 (n=1)'  # same seed
    assert frame.loc[('SNV', 'DeepLabv3+', f'60 % − {FRACTION_REFERENCE}')]['DADA'] == MISSING
    md, _ = render(frame, 'caption')
    assert '| SNV ' in md and "('SNV'" not in md        # index levels become columns, not tuples


def test_seed_table_reads_the_table2_source_only_runs_and_seed_studies():
    main = [record('source_only', 'hand', v, seed=s) for s, v in enumerate((0.2, 0.4, 0.6))]
    extra = [record('source_only', 'hand', v, seed=s, study='seeds') for s, v in enumerate((0.1, 0.3, 0.5, 0.7))]
    frame = seed_table(main + extra + [record('adaptsegnet', 'hand', 0.9),                 # not Source Only
                                       {**record('source_only', 'hand', 0.9), 'tag': 'x'}])  # not the default
    assert frame.loc[('Source Only', 'DeepLabv3+', 'main')]['Hand Gesture IoU'] == f'0.400 ± {0.2:.3f} [0.200, 0.600]'
    assert frame.loc[('Source Only', 'DeepLabv3+', 'seeds')]['Hand Gesture IoU'].endswith('[0.100, 0.700]')
    assert len(frame) == 2
    urban = [record('source_only', 'cityscapes', 0.0, seed=s) for s in (0, 1)]
    for r, miou in zip(urban, (0.1, 0.3)):
        r['metrics'] = {'target_test': {'miou16': miou}}
    assert seed_table(urban).iloc[0]['cityscapes mIoU-16'].endswith('[0.100, 0.300]')  # read by its headline


def test_table2_notes_which_run_of_a_grid_chose_the_cell():
    point = {**record('adaptsegnet', 'snv', 0.5), 'tag': 'lambda_adv_target1=0.001'}
    frame, notes = table2([record('adaptsegnet', 'snv', 0.4), point, record('adaptsegnet', 'hand', 0.3)])
    assert frame.loc['AdaptSegNet', ('SNV', 'DeepLabv3+', 'IoU')] == '0.500 (n=1)'
    assert notes == ['AdaptSegNet, SNV, DeepLabv3+: best of 2 grid points by mean IoU on target_all: lambda_adv_target1=0.001']
    _, notes = table2([record('adaptsegnet', 'snv', 0.6), point])
    assert notes[0].endswith(': default')
    on_grid = record('adaptsegnet', 'snv', 0.6, method_cfg={'lambda_adv_target1': 0.0002})
    on_grid['config']['grid'] = {'method.lambda_adv_target1': [0.0002, 0.001]}
    _, notes = table2([on_grid, point])
    assert notes[0].endswith(': default (lambda_adv_target1=0.0002)')


def test_cells_show_mean_std_and_n_below_three():
    from udabench.tables import _cell
    assert _cell([0.5]) == '0.500 (n=1)'
    assert _cell([0.4, 0.6]) == f'0.500 ± {0.1414:.3f} (n=2)'
    assert _cell([0.4, 0.5, 0.6]) == '0.500 ± 0.100'


def _seeded(method, ious, target='hand', net='unet', **kw):
    return [{**record(method, target, v, net=net, seed=s, **kw), 'git_commit': 'abc'} for s, v in enumerate(ious)]


def _configured(method, ious, study='main', tag='', **method_cfg):
    """Seeded runs of ``method`` with a composed config that declares the fine-tuning control (the
    adversarial weight set to 0), as a method config does."""
    config = {'method': method_cfg, 'controls': {'finetune': {'method.lambda_adv': 0.0}}}
    return [{**r, 'tag': tag, 'config': config} for r in _seeded(method, ious, study=study)]


def test_paired_delta_against_a_hand_computed_t_interval():
    from udabench.tables import delta_table, paired_delta
    # differences per seed: +0.10, +0.15, +0.20 -> mean 0.15, sd 0.05, t(0.975, 2) = 4.302653
    so = _seeded('source_only', (0.30, 0.50, 0.10))
    glss = _seeded('glss', (0.40, 0.65, 0.30))
    d = paired_delta(glss, so)
    half = 4.302653 * 0.05 / 3 ** 0.5                              # 0.124: [+0.026, +0.274]
    assert d['n'] == 3 and abs(d['mean'] - 0.15) < 1e-12
    assert abs(d['low'] - (0.15 - half)) < 1e-6 and abs(d['high'] - (0.15 + half)) < 1e-6
    # unpaired, the spread of Source Only (sd 0.2) would hide it; paired, the interval excludes 0
    frame, notes = delta_table(so + glss)
    assert frame.loc['GLSS', ('Hand Gesture', 'UNet', 'vs Source Only')] == '+0.150 [+0.026, +0.274] *'
    assert 'Student t' in notes[0] and 'fine-tuning control' in notes[1]


def test_paired_delta_pairs_by_seed_and_marks_only_intervals_excluding_zero():
    from udabench.tables import delta_table
    so = _seeded('source_only', (0.30, 0.50, 0.10))
    advent = _seeded('advent', (0.35, 0.40))                  # seed 2 missing: two pairs, +0.05 and -0.10
    frame, _ = delta_table(so + advent)
    cell = frame.loc['AdvEnt', ('Hand Gesture', 'UNet', 'vs Source Only')]
    assert cell.startswith('-0.025 [') and '*' not in cell and cell.endswith('(n=2)')
    one, _ = delta_table(so + _seeded('clan', (0.9,)))
    assert one.loc['CLAN', ('Hand Gesture', 'UNet', 'vs Source Only')] == '+0.600 (n=1)'   # no interval from one seed


def test_delta_against_the_finetuning_control_of_the_controls_study():
    from udabench.tables import FINETUNE_TAG, delta_table
    so = _seeded('source_only', (0.30, 0.50, 0.10))
    bdl = _configured('bdl', (0.40, 0.60, 0.20), lr=2.5e-4, lambda_adv=1e-3)
    control = _configured('bdl', (0.40, 0.60, 0.20), study='controls', tag=FINETUNE_TAG, lr=2.5e-4, lambda_adv=0.0)
    frame, notes = delta_table(so + bdl + control)
    assert frame.loc['BDL', ('Hand Gesture', 'UNet', 'vs Source Only')] == '+0.100 [+0.100, +0.100] *'
    assert frame.loc['BDL', ('Hand Gesture', 'UNet', 'vs fine-tuning')] == '+0.000 [+0.000, +0.000]'
    assert len(notes) == 1


def test_a_grid_point_is_read_against_the_finetuning_control_only_when_it_is_its_own():
    from udabench.tables import FINETUNE_TAG, delta_table
    so = _seeded('source_only', (0.30, 0.50, 0.10))
    default = _configured('dada', (0.40, 0.60, 0.20), lr=2.5e-4, lambda_adv=1e-3)
    control = _configured('dada', (0.40, 0.60, 0.20), study='controls', tag=FINETUNE_TAG, lr=2.5e-4, lambda_adv=0.0)
    lower_lr = _configured('dada', (0.50, 0.70, 0.30), tag='lr=0.0001', lr=1e-4, lambda_adv=1e-3)
    frame, notes = delta_table(so + default + control + lower_lr)      # the lr point wins Table 2's cell
    assert frame.loc['DADA', ('Hand Gesture', 'UNet', 'vs Source Only')] == '+0.200 [+0.200, +0.200] *'
    assert frame.loc['DADA', ('Hand Gesture', 'UNet', 'vs fine-tuning')] == MISSING   # its control has lr 1e-4
    assert any('lr=0.0001' in n and 'not its own' in n for n in notes)
    heavier = _configured('dada', (0.55, 0.75, 0.35), tag='lambda_adv=0.005', lr=2.5e-4, lambda_adv=5e-3)
    frame, _ = delta_table(so + default + control + lower_lr + heavier)   # a target weight: same control
    assert frame.loc['DADA', ('Hand Gesture', 'UNet', 'vs fine-tuning')] == '+0.150 [+0.150, +0.150] *'


def test_grid_table_lists_every_point_against_the_default_and_marks_the_chosen_one():
    from udabench.tables import grid_table
    default = _configured('dada', (0.40, 0.60, 0.20), lr=2.5e-4, lambda_adv=1e-3)
    lower_lr = _configured('dada', (0.50, 0.65, 0.30), tag='lr=0.0001', lr=1e-4, lambda_adv=1e-3)
    frame = grid_table(_seeded('source_only', (0.3, 0.5, 0.1)) + default + lower_lr).set_index(['method', 'point'])
    assert list(frame.index) == [('DADA', 'default'), ('DADA', 'lr=0.0001')]
    row = frame.loc[('DADA', 'lr=0.0001')]
    d = t_interval([0.10, 0.05, 0.10])
    assert row['Hand Gesture UNet IoU'] == '0.483 ± 0.176'
    assert row['Hand Gesture UNet − default'] == f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] *"
    assert row['Hand Gesture UNet chosen'] == 'x' and frame.loc[('DADA', 'default'), 'Hand Gesture UNet chosen'] == ''
    assert frame.loc[('DADA', 'default'), 'Hand Gesture UNet − default'] == ''
    assert grid_table(default).empty                                   # one point: no grid


def test_grid_table_names_the_grid_point_the_default_run_stands_for():
    from udabench.tables import grid_table
    grid = {'method.lr': [1e-4, 2.5e-4], 'method.lambda_adv': [1e-3]}
    default = _configured('dada', (0.40, 0.60, 0.20), lr=2.5e-4, lambda_adv=1e-3)
    lower_lr = _configured('dada', (0.50, 0.65, 0.30), tag='lambda_adv=0.001_lr=0.0001', lr=1e-4, lambda_adv=1e-3)
    for r in default + lower_lr:
        r['config'] = {**r['config'], 'grid': grid}
    frame = grid_table(default + lower_lr)
    assert list(frame.point) == ['default (lambda_adv=0.001_lr=0.00025)', 'lambda_adv=0.001_lr=0.0001']
    off_grid = [{**r, 'config': {**r['config'], 'method': {'lr': 5e-4, 'lambda_adv': 1e-3}}} for r in default]
    assert list(grid_table(off_grid + lower_lr).point) == ['default', 'lambda_adv=0.001_lr=0.0001']


def test_a_cell_mixing_configs_is_refused():
    import pytest

    from udabench.tables import table2
    runs = _seeded('source_only', (0.3, 0.5))
    runs[0]['config'] = runs[1]['config'] = {'method': {'lr': 1e-3}}
    assert table2(runs)[0].loc['Source Only', ('Hand Gesture', 'UNet', 'IoU')].endswith('(n=2)')
    runs[1]['config'] = {'method': {'lr': 1e-2}}            # a default changed between the seeds
    runs[0]['_path'], runs[1]['_path'] = 'a.json', 'b.json'
    with pytest.raises(ValueError, match=r'2 configs.*a\.json.*b\.json'):
        table2(runs)


def test_a_cell_mixing_cpu_kinds_is_refused():
    import pytest

    from udabench.tables import table2
    runs = _seeded('source_only', (0.3, 0.5))
    runs[0]['machine'] = runs[1]['machine'] = {'cpu_capability': 'AVX512'}
    assert table2(runs)[0].loc['Source Only', ('Hand Gesture', 'UNet', 'IoU')].endswith('(n=2)')
    runs[1]['machine'] = {'cpu_capability': 'AVX2'}          # seed 1 computed on another kind of CPU
    runs[0]['_path'], runs[1]['_path'] = 'a.json', 'b.json'
    with pytest.raises(ValueError, match=r'2 CPU kinds.*AVX2: b\.json; AVX512: a\.json'):
        table2(runs)
    del runs[1]['machine']                                     # a file older than the field
    with pytest.raises(ValueError, match=r'CPU kinds.*unrecorded: b\.json'):
        table2(runs)


INTEL, AMD = 'Intel(R) Xeon(R) Processor', 'AMD EPYC'


def test_one_instruction_set_on_two_cpu_models_is_two_cpu_kinds():
    """Seen on 2026-12-06: the committed DepthDistribution fine-tuning control (DeepLabv3+, SNV, seed 0),
    made on an Intel Xeon (AVX512), 0.339 IoU; the same code, seed and thread count on an AMD EPYC
    (AVX512 too) 0.238. The instruction set alone does not name the kernels' rounding."""
    import pytest

    from udabench.tables import cpu_kind, paired_delta, table2
    assert cpu_kind({'machine': {'cpu': AMD, 'cpu_capability': 'AVX512'}}) == 'AMD EPYC (AVX512)'
    runs = _seeded('source_only', (0.3, 0.5))
    runs[0]['machine'] = {'cpu': INTEL, 'cpu_capability': 'AVX512'}
    runs[1]['machine'] = {'cpu': AMD, 'cpu_capability': 'AVX512'}
    runs[0]['_path'], runs[1]['_path'] = 'a.json', 'b.json'
    with pytest.raises(ValueError, match=r'2 CPU kinds.*AMD EPYC \(AVX512\): b\.json'):
        table2(runs)
    method = [record('advent', 'hand', iou, seed=s) for s, iou in enumerate((0.5, 0.6))]
    for r in method:
        r['machine'] = {'cpu': INTEL, 'cpu_capability': 'AVX512'}
    with pytest.raises(ValueError, match=r'different kinds of CPU'):
        paired_delta(method, runs)


def test_a_pair_across_cpu_kinds_is_refused():
    import pytest

    from udabench.tables import paired_delta
    method = [record('advent', 'hand', iou, seed=s) for s, iou in enumerate((0.5, 0.6))]
    reference = [record('source_only', 'hand', iou, seed=s) for s, iou in enumerate((0.4, 0.4))]
    for r in method + reference:
        r['machine'] = {'cpu_capability': 'AVX512'}
    assert paired_delta(method, reference)['n'] == 2
    reference[1]['machine'] = {'cpu_capability': 'AVX2'}      # seed 1's Source Only made on another CPU
    method[1]['_path'], reference[1]['_path'] = 'advent1.json', 'so1.json'
    with pytest.raises(ValueError, match=r'different kinds of CPU.*advent1\.json \(AVX512\) ~ so1\.json \(AVX2\)'):
        paired_delta(method, reference)


def test_a_cell_mixing_code_versions_is_refused_with_the_files_named(tmp_path):
    import json

    import pytest

    from tools_make_tables import main as make_tables
    from udabench.tables import code_version, table2
    runs = _seeded('source_only', (0.3, 0.5))
    runs[1]['git_commit'] = 'def+dirty'
    runs[0]['_path'], runs[1]['_path'] = 'a.json', 'b.json'
    with pytest.raises(ValueError, match=r'code versions.*abc: a\.json; def: b\.json'):
        table2(runs)
    assert code_version({'git_commit': 'abc+dirty'}) == 'abc'
    assert code_version({'git_commit': 'abc', 'code_version': 'v7'}) == 'v7'     # h12's field wins
    runs[1]['git_commit'] = 'abc+dirty'                     # same code, a dirty tree: averaged
    assert table2(runs)[0].loc['Source Only', ('Hand Gesture', 'UNet', 'IoU')].endswith('(n=2)')
    runs[1]['code_version'] = 'other'
    for i, r in enumerate(runs):
        path = tmp_path / 'runs' / f'{i}.json'
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps({**r, 'profile': 'smoke', 'data_source': 'synthetic', '_path': None}))
    stale = tmp_path / 'tables' / 'smoke_synthetic' / 'table2.md'
    stale.parent.mkdir(parents=True)
    stale.write_text('an old table 2')
    assert make_tables(['--results', str(tmp_path / 'runs'), '--out', str(tmp_path / 'tables')]) == 2
    assert not stale.exists()                                   # refused: the old file is not left behind
    assert (tmp_path / 'tables' / 'smoke_synthetic' / 'gan_vs_vae.md').exists()    # the other tables are written


def test_controls_table_pairs_each_control_with_the_finetuning_control_of_the_same_seed():
    from udabench.tables import controls_table

    def control(tag, iou, seed):
        return {**record('advent', 'hand', iou, seed=seed, study='controls'), 'tag': tag}
    records = [control('finetune', 0.50 + 0.1 * s, s) for s in range(3)]
    records += [control('positive_f1.0', 0.60 + 0.1 * s + 0.01 * s, s) for s in range(3)]   # +0.10, +0.11, +0.12
    records += [control('positive_f0.2', 0.50 + 0.1 * s, s) for s in range(2)]              # equal: +0.000
    records += [record('advent', 'hand', 0.5 + 0.1 * s - 0.01, seed=s) for s in range(3)]   # -0.01 each
    records += [record('advent', 'snv', 0.3)]                                               # no control: no row
    row = controls_table(records).loc[('AdvEnt', 'DeepLabv3+', 'Hand Gesture')]
    assert row['fine-tuning'] == '0.600 ± 0.100' and row['positive_f0.2'] == '0.550 ± 0.071 (n=2)'
    assert row['positive_f1.0 − fine-tuning'].startswith('+0.110 [') and row['positive_f1.0 − fine-tuning'].endswith('*')
    assert row['positive_f0.2 − fine-tuning'].startswith('+0.000') and row['positive_f0.2 − fine-tuning'].endswith('(n=2)')
    assert row['method run − fine-tuning'].startswith('-0.010')
    assert len(controls_table(records)) == 1


def test_table3_means_deltas_and_published_block_from_urban_records():
    from udabench.tables import table3, table3_deltas, table3_published

    def urban(method, values, miou13_shift=0.0):
        return [{**record(method, 'cityscapes', 0.0, net='deeplabv3plus', seed=s), 'git_commit': 'abc',
                 'metrics': {'target_test': {'miou16': v, 'miou13': v + miou13_shift}}} for s, v in enumerate(values)]
    so, advent = urban('source_only', (0.10, 0.20, 0.30)), urban('advent', (0.15, 0.25, 0.35), 0.01)
    assert table3_published([]).empty                       # no urban run: no published block either
    t3 = table3(so + advent)
    assert t3.loc['AdvEnt', ('DeepLabv3+', 'mIoU-16')] == '0.250 ± 0.100'
    assert t3.loc['AdvEnt', ('DeepLabv3+', 'mIoU-13')] == '0.260 ± 0.100'
    deltas = table3_deltas(so + advent)
    assert deltas.loc['AdvEnt', ('DeepLabv3+', 'mIoU-16 − Source Only')] == '+0.050 [+0.050, +0.050] *'
    assert deltas.loc['AdvEnt', ('DeepLabv3+', 'mIoU-13 − Source Only')] == '+0.060 [+0.060, +0.060] *'
    assert table3_published(so).loc['GLSS', 'mIoU-13'] == '52.3'


def test_controls_read_urban_rows_by_miou16_on_the_held_out_split():
    from udabench.tables import controls_table

    def urban(values, **kw):
        return [{**record('advent', 'cityscapes', 0.0, seed=s, **kw), 'git_commit': 'abc',
                 'metrics': {'target_test': {'miou16': v}}} for s, v in enumerate(values)]
    finetune = [dict(r, tag='finetune') for r in urban((0.10, 0.20, 0.30), study='controls')]
    frame = controls_table(urban((0.11, 0.21, 0.31)) + finetune)
    row = frame.loc[('AdvEnt', 'DeepLabv3+', 'cityscapes')]
    assert row['fine-tuning'] == '0.200 ± 0.100' and row['method run − fine-tuning'].startswith('+0.010')


def test_markdown_rows_formats_and_aligns_each_column():
    text = markdown_rows([dict(loop='vae step', ms=12.345, share=0.5)],
                         [('loop', 'loop', ''), ('ms', 'ms', '.1f'), ('of peak', 'share', '.0%')])
    assert text.splitlines() == ['| loop | ms | of peak |', '|:--|--:|--:|', '| vae step | 12.3 | 50% |']


def test_a_delta_cell_reads_back_as_the_interval_it_shows():
    from udabench.tables import MISSING, _delta_cell, parse_delta_cell
    for delta in (dict(n=3, mean=0.15, low=0.026, high=0.274), dict(n=3, mean=-0.0004, low=-0.02, high=0.019),
                  dict(n=2, mean=-0.31, low=-0.5, high=-0.12), dict(n=1, mean=0.6, low=None, high=None)):
        parsed = parse_delta_cell(_delta_cell(delta))
        assert abs(parsed['mean'] - delta['mean']) < 5e-4 and parsed['n'] == delta['n']
        assert parsed['resolved'] == (delta['low'] is not None and (delta['low'] > 0 or delta['high'] < 0))
        assert (parsed['low'] is None) == (delta['low'] is None)
    for other in ('0.500 ± 0.100', '0.700 (n=1)', MISSING, '', 'x', 'failed'):
        assert parse_delta_cell(other) is None


def test_table1_pairs_the_oracle_with_source_only_of_the_same_seed_on_the_test_split():
    from udabench.tables import table1

    def on_test(runs, ious):            # the 20 % test split; target_all is set apart so a mix-up shows
        return [{**r, 'metrics': {'target_test': {'iou': v, 'dice': v}, 'target_all': {'iou': 0.0, 'dice': 0.0}}}
                for r, v in zip(runs, ious)]
    oracle = on_test(_seeded('oracle', (0.8, 0.9, 0.7), study='main'), (0.8, 0.9, 0.7))
    source_only = on_test(_seeded('source_only', (0, 0, 0)), (0.7, 0.5, 0.6))
    frame = table1(oracle[::-1] + source_only)
    d = t_interval([0.1, 0.4, 0.1])
    assert frame.loc['UNet', ('Hand Gesture', 'IoU')] == '0.800 ± 0.100'
    assert frame.loc['UNet', ('Hand Gesture', 'IoU − Source Only')] == \
        f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"
    assert frame.loc['DeepLabv3+', ('Hand Gesture', 'IoU − Source Only')] == MISSING   # no Source Only there


def test_per_seed_cells_list_each_seeds_own_difference_paired_by_seed():
    from udabench.tables import delta_table, parse_delta_cell, per_seed_differences
    so = _seeded('source_only', (0.30, 0.50, 0.10))
    glss = _seeded('glss', (0.40, 0.65, 0.30))[::-1]                   # listed out of seed order
    where = ('Hand Gesture', 'UNet', 'vs Source Only')
    plain = delta_table(so + glss)[0].loc['GLSS', where]
    with per_seed_differences():
        cell = delta_table(so + glss)[0].loc['GLSS', where]
        pair = delta_table(so + _seeded('advent', (0.35, 0.40)))[0].loc['AdvEnt', where]
    assert plain == '+0.150 [+0.026, +0.274] *'
    assert cell == '+0.150 [+0.026, +0.274] * {0: +0.100, 1: +0.150, 2: +0.200}'
    assert pair.endswith('(n=2) {0: +0.050, 1: -0.100}')
    assert parse_delta_cell(cell) == parse_delta_cell(plain)           # read back as the interval it shows
    assert delta_table(so + glss)[0].loc['GLSS', where] == plain       # only inside the context


def test_per_seed_fig5_cells_pair_ssim_with_the_other_objective_of_the_same_seed():
    from udabench.tables import per_seed_differences
    runs = [_ls_record('ssim', 1, (0.2, 0.4)), _ls_record('ssim', 0, (0.3, 0.5)),
            _ls_record('mse', 0, (0.3, 0.45)), _ls_record('mse', 1, (0.2, 0.30))]
    with per_seed_differences():
        frame = fig5_table(runs)
    assert frame.loc[10, ('SNV', 'SSIM − MSE')].endswith('(n=2) {0: +0.050, 1: +0.100}')


def test_replication_sets_each_paired_difference_beside_the_same_one_on_another_cpu():
    from udabench.tables import delta_table, replication_table
    so = (0.30, 0.50, 0.10)

    def deltas(glss, advent, clan):
        runs = _seeded('source_only', so) + _seeded('glss', glss) + _seeded('advent', advent) + _seeded('clan', clan)
        return {'table2_deltas': delta_table(runs)[0]}
    reference = deltas(glss=(0.40, 0.65, 0.30), advent=(0.20, 0.42, 0.02), clan=(0.31, 0.48, 0.12))
    replicate = deltas(glss=(0.42, 0.61, 0.28), advent=(0.40, 0.60, 0.15), clan=(0.35, 0.50, 0.09))
    frame = replication_table(reference, replicate, 'Intel', 'AMD')
    verdict = {row['finding']: row['verdict'] for _, row in frame.iterrows()}
    assert verdict == {'GLSS': 'holds', 'AdvEnt': 'reversed', 'CLAN': 'unresolved on both'}
    glss = frame[frame.finding == 'GLSS'].iloc[0]
    assert glss['table'] == 'table2_deltas' and glss['difference'] == 'Hand Gesture UNet vs Source Only'
    assert glss['Intel'] == '+0.150 [+0.026, +0.274] *' and glss['AMD'].startswith('+0.137 [')
    one_sided = deltas(glss=(0.31, 0.48, 0.14), advent=(0.20, 0.42, 0.02), clan=(0.31, 0.48, 0.12))
    assert replication_table(reference, one_sided, 'Intel', 'AMD').set_index('finding').loc[
        'GLSS', 'verdict'] == 'resolved on Intel only'
    assert replication_table(reference, {}, 'Intel', 'AMD').empty          # no table in common: nothing to set beside


def _write_results(root, runs, kind=None):
    """Result files of ``runs`` under ``root`` (one per method, tag and seed), made on CPU ``kind``."""
    import json
    for r in runs:
        path = root / r['method'] / f"{r['tag'] or 'main'}_seed{r['seed']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        machine = {'machine': {'cpu': kind, 'cpu_capability': 'AVX512'}} if kind else {}
        path.write_text(json.dumps({**r, 'profile': 'smoke', 'data_source': 'synthetic', **machine}))


def test_make_tables_compares_a_replicate_with_the_same_runs_of_the_reference(tmp_path):
    """The reference may hold more runs than the replicate (a grid point the replicate did not make):
    only the runs at the replicate's paths are read, so both sides choose the same grid point."""
    from tools_make_tables import main as make_tables
    so = _seeded('source_only', (0.30, 0.50, 0.10))
    advent = _seeded('advent', (0.40, 0.65, 0.30))
    better_point = [{**r, 'tag': 'lr10', 'metrics': {'target_all': {'iou': r['metrics']['target_all']['iou'] + 0.3,
                                                                    'dice': 0.0}}} for r in advent]
    _write_results(tmp_path / 'intel', so + advent + better_point, INTEL)
    _write_results(tmp_path / 'amd', so + advent, AMD)
    out = tmp_path / 'tables'
    assert make_tables(['--results', str(tmp_path / 'amd'), '--out', str(out),
                        '--compare-with', str(tmp_path / 'intel')]) == 0
    text = (out / 'smoke_synthetic' / 'replication.md').read_text()
    assert 'another grid point' not in text
    row = next(line for line in text.splitlines() if 'AdvEnt' in line)
    assert row.count('+0.150 [+0.026, +0.274] *') == 2 and 'holds' in row      # the same runs: the same interval
    assert f'{INTEL} (AVX512)' in text and 'AMD EPYC (AVX512)' in text and '1 holds' in text


def test_a_finding_is_named_by_its_leading_label_columns_not_by_a_flag_after_the_values():
    """grids: the point's name holds numbers and 'chosen' (which may differ between CPU kinds) follows
    the values; table4: the flags lead the row and name it."""
    import pandas as pd

    from udabench.tables import paired_findings
    grids = pd.DataFrame([dict(method='AdaptSegNet', point='lambda=0.001', IoU='0.315 ± 0.066', delta='', chosen=''),
                          dict(method='AdaptSegNet', point='lambda=0.005', IoU='0.316 ± 0.066',
                               delta='+0.001 [-0.000, +0.002]', chosen='x'),
                          dict(method='AdaptSegNet', point='lambda=0.010', IoU='0.320 ± 0.066',
                               delta='+0.005 [+0.001, +0.009] *', chosen='')])
    assert paired_findings(grids) == {('AdaptSegNet, lambda=0.005', 'delta'): '+0.001 [-0.000, +0.002]',
                                      ('AdaptSegNet, lambda=0.010', 'delta'): '+0.005 [+0.001, +0.009] *'}
    table4 = pd.DataFrame([dict(Edge='', L_p='x', LS='x', IoU='0.063 ± 0.035', full='-0.362 [-0.470, -0.255] *'),
                           dict(Edge='x', L_p='x', LS='x', IoU='0.426 ± 0.021', full='')])
    assert paired_findings(table4) == {('no Edge, L_p, LS', 'full'): '-0.362 [-0.470, -0.255] *'}


def test_replication_names_a_cell_whose_best_grid_point_differs_between_the_two_sides(tmp_path):
    from tools_make_tables import main as make_tables
    for kind, bonus in ((INTEL, 0.3), (AMD, -0.3)):
        runs = _seeded('source_only', (0.30, 0.50, 0.10)) + _seeded('advent', (0.40, 0.65, 0.30)) + [
            {**r, 'tag': 'lr10', 'metrics': {'target_all': {'iou': r['metrics']['target_all']['iou'] + bonus, 'dice': 0.0}}}
            for r in _seeded('advent', (0.40, 0.65, 0.30))]
        _write_results(tmp_path / kind, runs, kind)
    assert make_tables(['--results', str(tmp_path / AMD), '--out', str(tmp_path / 'tables'),
                        '--compare-with', str(tmp_path / INTEL)]) == 0
    text = (tmp_path / 'tables' / 'smoke_synthetic' / 'replication.md').read_text()
    assert 'AdvEnt, Hand Gesture, UNet: Table 2 shows another grid point on each side (AMD EPYC (AVX512): ' in text
    assert f'; {INTEL} (AVX512): lr10)' in text


def test_make_tables_per_seed_writes_each_seeds_difference_and_says_so(tmp_path):
    from tools_make_tables import main as make_tables
    runs = _seeded('source_only', (0.30, 0.50, 0.10)) + _seeded('advent', (0.40, 0.65, 0.30))
    _write_results(tmp_path / AMD, runs, AMD)
    _write_results(tmp_path / INTEL, runs, INTEL)
    out = tmp_path / 'tables'
    assert make_tables(['--results', str(tmp_path / AMD), '--out', str(out), '--per-seed',
                        '--compare-with', str(tmp_path / INTEL)]) == 0
    deltas = (out / 'smoke_synthetic' / 'table2_deltas.md').read_text()
    assert '+0.150 [+0.026, +0.274] * {0: +0.100, 1: +0.150, 2: +0.200}' in deltas
    assert '{seed: difference}' in deltas
    assert '1 holds' in (out / 'smoke_synthetic' / 'replication.md').read_text()   # still read as intervals
    assert make_tables(['--results', str(tmp_path / AMD), '--out', str(out)]) == 0
    assert '{0:' not in (out / 'smoke_synthetic' / 'table2_deltas.md').read_text()


def test_compare_with_a_folder_without_the_same_runs_is_an_error_naming_the_option(tmp_path, capsys):
    from tools_make_tables import main as make_tables
    _write_results(tmp_path / 'amd', _seeded('source_only', (0.30, 0.50, 0.10)))
    (tmp_path / 'empty').mkdir()
    for other in ('empty', 'missing'):
        assert make_tables(['--results', str(tmp_path / 'amd'), '--out', str(tmp_path / 'tables'),
                            '--compare-with', str(tmp_path / other)]) == 2
        assert f'--compare-with {tmp_path / other}: no result files at the paths' in capsys.readouterr().err


def test_a_reference_table_refused_for_mixed_code_is_named_in_the_replication(tmp_path):
    from tools_make_tables import main as make_tables
    for kind in (INTEL, AMD):
        runs = _seeded('source_only', (0.30, 0.50, 0.10)) + _seeded('advent', (0.40, 0.65, 0.30))
        if kind == INTEL:
            runs[1]['code_version'] = 'other'                   # seed 1 of Source Only made by other code
        _write_results(tmp_path / kind, runs, kind)
    assert make_tables(['--results', str(tmp_path / AMD), '--out', str(tmp_path / 'tables'),
                        '--compare-with', str(tmp_path / INTEL)]) == 0
    text = (tmp_path / 'tables' / 'smoke_synthetic' / 'replication.md').read_text()
    assert f'table2_deltas of {tmp_path / INTEL} not compared: ' in text and 'code versions' in text
