# Every `cpu`-profile run behind the README's tables, as data: `python tools/sweep.py --plan cpu`
# expands each group (methods x nets x targets x [grid points] x variants x seeds), skips runs whose
# result file exists and launches the rest (see udabench.sweep). A group's keys: methods, nets,
# targets, seeds (default: the plan's), study (default 'main'), grid (every point of the method's
# declared grid), variants (a list of dict(tag=..., set={key: value}) run in turn), table (what the
# runs are for). The runs are made with one thread each, two at a time on two cores: a run repeats
# bit for bit with the same thread count, another count changes the summation order.
profile = 'cpu'
seeds = [0, 1, 2]
threads = 1            # per run (OMP/MKL threads and torch.set_num_threads)
timeout_min = 120      # per run, for the launcher; a timed-out run is requeued and resumes
ADAPTATION = ['adaptsegnet', 'advent', 'clan', 'dada', 'glss', 'bdl', 'dise']
# Groups are made in the order listed, most needed first: Table 2 on DeepLabv3+ with every baseline's
# fine-tuning control (each row is read against it), the oracle (is the gap real?) and the positive
# controls of the cheaper baselines (does the target reach them?), Table 2 on UNet, then the rest.
# Issue 11's controls: per method its declared `controls` (`controls=True`: all; a list: those named):
# the fine-tuning control 'finetune' (every target weight 0, read by tables.delta_table) and the
# positive controls 'positive_f0.2'/'positive_f1.0'.
FAST = ['adaptsegnet', 'advent', 'clan', 'dada']
groups = [
    dict(table='Table 2', methods=['source_only'] + ADAPTATION, nets=['deeplabv3plus'], targets=['hand', 'snv']),
    # seed 003's cosine similarity, seed 004's depth distribution, seed 001's Kanezaki clusters (a
    # label-free refinement of Source Only): their own rows in Tables 2 and 3
    dict(table='Table 2', methods=['cosine_similarity', 'depth_distribution', 'unsup_backprop'],
         nets=['deeplabv3plus'], targets=['hand', 'snv']),
    dict(table='Controls', methods=FAST + ['bdl', 'dise', 'cosine_similarity', 'depth_distribution'],
         nets=['deeplabv3plus'], targets=['hand', 'snv'], study='controls', controls=['finetune']),
    dict(table='Table 1', methods=['oracle'], nets=['deeplabv3plus'], targets=['hand', 'snv']),
    dict(table='Controls', methods=FAST, nets=['deeplabv3plus'], targets=['hand', 'snv'], study='controls',
         controls=['positive_f0.2', 'positive_f1.0']),
    # Table 3 (SYNTHIA -> Cityscapes twins): the methods built for the urban task so far.
    dict(table='Table 3', methods=['source_only', 'oracle', 'adaptsegnet', 'advent', 'clan', 'dada', 'bdl', 'dise',
                                   'glss', 'cosine_similarity', 'depth_distribution', 'unsup_backprop'],
         nets=['deeplabv3plus'], targets=['cityscapes']),
    dict(table='Table 2', methods=['source_only'] + ADAPTATION, nets=['unet'], targets=['hand', 'snv']),
    dict(table='Fig. 5', methods=['glss_ls_study'], nets=['deeplabv3plus'], targets=['hand', 'snv'], grid=True,
         study='ls_iterations'),
    dict(table='Supplement Table 2 (GAN vs VAE)', methods=['glss_gan'], nets=['deeplabv3plus'],
         targets=['hand', 'snv']),
    dict(table='Controls', methods=FAST, nets=['unet'], targets=['hand', 'snv'], study='controls',
         controls=['finetune']),
    dict(table='Controls', methods=FAST + ['bdl', 'dise'], nets=['deeplabv3plus', 'unet'], targets=['hand', 'snv'],
         study='controls', controls=True),
    dict(table='Table 4', methods=['glss_ablation'], nets=['deeplabv3plus'], targets=['hand', 'snv'], grid=True,
         study='ablation'),
    dict(table='Table 2 (AdaptSegNet grid, seed 000 §2.2)', methods=['adaptsegnet'], nets=['deeplabv3plus'],
         targets=['hand', 'snv'], grid=True),
    dict(table='Supplement Table 1 (SNV)', methods=['adaptsegnet', 'bdl', 'clan', 'advent', 'dada', 'glss'],
         nets=['deeplabv3plus'], targets=['snv'], study='fraction',
         variants=[dict(tag=f'f{f}', set={'method.target_fraction': f}) for f in (0.6, 0.4, 0.2)]),
    dict(table='Table 1', methods=['oracle'], nets=['unet', 'deeplabv3plus', 'fpn', 'linknet', 'pspnet'],
         targets=['hand', 'snv']),
    # The other declared grids, on DeepLabv3+ as seed 000 §2.2 (the UNet column runs the default point):
    # issue 11's BDL, DISE and DADA, issue 15's cosine similarity and depth distribution. Table 2 then
    # shows each method's best point (tables.select).
    dict(table='Table 2 (grids, seed 000 §2.2)', methods=['dada', 'bdl', 'dise', 'cosine_similarity', 'depth_distribution'],
         nets=['deeplabv3plus'], targets=['hand', 'snv'], grid=True),
]
