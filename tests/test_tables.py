"""Table specs on hand-made result records: each value lands in its cell, missing ones stay missing."""
from udabench.tables import FRACTION_REFERENCE, MISSING, fraction_table, render, seed_table, table2, table4


def record(method, target, iou, net='deeplabv3plus', seed=0, study='main', overrides=None, method_cfg=None):
    return dict(method=method, target=target, net=net, seed=seed, study=study, tag='', overrides=overrides or {},
                config={'method': method_cfg or {}}, metrics={'target_all': {'iou': iou, 'dice': iou}})


def test_table4_puts_each_ablation_point_in_its_row():
    on = {'method.vae.edge_skip': True, 'method.perceptual': True, 'method.latent_search.enabled': True}
    no_ls = {**on, 'method.latent_search.enabled': False}
    frame = table4([record('glss_ablation', 'hand', 0.7, study='ablation', overrides=on),
                    record('glss_ablation', 'snv', 0.4, study='ablation', overrides=no_ls)])
    full = frame[(frame.Edge == 'x') & (frame.L_p == 'x') & (frame.LS == 'x')].iloc[0]
    assert full['Hand Gesture IoU'] == '0.700' and full['SNV IoU'] == MISSING
    assert frame[(frame.Edge == 'x') & (frame.L_p == 'x') & (frame.LS == '')].iloc[0]['SNV IoU'] == '0.400'
    assert len(frame) == 8


def test_fraction_table_rows_per_fraction():
    frame = fraction_table([record('dada', 'snv', 0.3, study='fraction', method_cfg={'target_fraction': 0.4}),
                            record('glss', 'snv', 0.5, study='fraction', method_cfg={'target_fraction': 0.4})])
    row = frame.loc[('SNV', 'DeepLabv3+', '40 %')]
    assert row['DADA'] == '0.300' and row['GLSS'] == '0.500' and row['BDL'] == MISSING
    assert frame.loc[('SNV', 'DeepLabv3+', '60 %')]['DADA'] == MISSING


def test_fraction_table_reference_row_is_the_untagged_table2_run():
    grid_point = {**record('dada', 'snv', 0.9), 'tag': 'lambda_seg=0.5'}
    frame = fraction_table([record('dada', 'snv', 0.3, study='fraction', method_cfg={'target_fraction': 0.4}),
                            record('dada', 'snv', 0.35), grid_point, record('glss', 'hand', 0.6)])
    assert frame.loc[('SNV', 'DeepLabv3+', FRACTION_REFERENCE)]['DADA'] == '0.350'
    assert frame.loc[('SNV', 'DeepLabv3+', FRACTION_REFERENCE)]['GLSS'] == MISSING   # other target
    md, _ = render(frame, 'caption')
    assert '| SNV ' in md and "('SNV'" not in md        # index levels become columns, not tuples


def test_seed_table_mean_std_and_range():
    frame = seed_table([record('source_only', 'hand', v, seed=s, study='seeds') for s, v in enumerate((0.2, 0.4, 0.6))]
                       + [record('source_only', 'hand', 0.9, study='main')])        # other studies are ignored
    cell = frame.loc[('Source Only', 'DeepLabv3+')]['Hand Gesture IoU']
    assert cell == f'0.400 ± {0.2:.3f} (n=3) [0.200, 0.600]'


def test_table2_notes_which_run_of_a_grid_chose_the_cell():
    point = {**record('adaptsegnet', 'snv', 0.5), 'tag': 'lambda_adv_target1=0.001'}
    frame, notes = table2([record('adaptsegnet', 'snv', 0.4), point, record('adaptsegnet', 'hand', 0.3)])
    assert frame.loc['AdaptSegNet', ('SNV', 'DeepLabv3+', 'IoU')] == '0.500'
    assert notes == ['AdaptSegNet, SNV, DeepLabv3+: best of 2 runs by mean IoU on target_all: lambda_adv_target1=0.001']
    _, notes = table2([record('adaptsegnet', 'snv', 0.6), point])
    assert notes[0].endswith('the default configuration')
