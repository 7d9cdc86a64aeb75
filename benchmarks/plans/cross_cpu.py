# The `cpu` plan's rows that a session can make again on another kind of CPU, self-contained, to check
# whether the paired findings hold there (one seed is another network on another CPU kind, so none of
# these runs pairs with a committed file made elsewhere): Source Only, GLSS, BDL, DISE, the output-space
# adversarial baselines, cosine similarity, depth distribution and the Kanezaki row on DeepLabv3+ (default points) with
# their fine-tuning controls and the positive controls of the baselines, BDL and DISE; GAN vs VAE; on UNet
# Source Only, GLSS, BDL, DISE, the output-space baselines and every control of theirs; Fig. 5 and Table 4
# (GLSS's latent-search study and ablation); Table 1; the grids of AdaptSegNet, DADA, BDL, DISE, cosine
# similarity and depth distribution; Table 3; the target-fraction study of the output-space baselines, BDL
# and GLSS: every run of `cpu` (672 runs).
# With two one-thread runs at a time on 2 cores:
# `python tools/sweep.py --plan cross_cpu --results-dir results/<cpu> --tables results/<cpu>/tables`
# `python tools/make_tables.py --results results/<cpu> --out results/<cpu>/tables --compare-with results/runs`
profile = 'cpu'
seeds = [0, 1, 2]
threads = 1
timeout_min = 120
FAST = ['adaptsegnet', 'advent', 'clan', 'dada']
groups = [
    dict(table='Table 2', methods=['source_only'] + FAST + ['glss', 'bdl', 'dise', 'cosine_similarity', 'depth_distribution',
                                                      'unsup_backprop'],
         nets=['deeplabv3plus'], targets=['hand', 'snv']),
    dict(table='Controls', methods=FAST + ['bdl', 'dise', 'cosine_similarity', 'depth_distribution'],
         nets=['deeplabv3plus'], targets=['hand', 'snv'], study='controls', controls=['finetune']),
    dict(table='Controls', methods=FAST + ['bdl', 'dise'], nets=['deeplabv3plus'], targets=['hand', 'snv'],
         study='controls', controls=['positive_f0.2', 'positive_f1.0']),
    dict(table='Supplement Table 2 (GAN vs VAE)', methods=['glss_gan'], nets=['deeplabv3plus'], targets=['hand', 'snv']),
    dict(table='Table 2', methods=['source_only'] + FAST + ['glss', 'bdl', 'dise'], nets=['unet'], targets=['hand', 'snv']),
    dict(table='Controls', methods=FAST + ['bdl', 'dise'], nets=['unet'], targets=['hand', 'snv'], study='controls',
         controls=True),
    dict(table='Fig. 5', methods=['glss_ls_study'], nets=['deeplabv3plus'], targets=['hand', 'snv'], grid=True,
         study='ls_iterations'),
    dict(table='Table 4', methods=['glss_ablation'], nets=['deeplabv3plus'], targets=['hand', 'snv'], grid=True,
         study='ablation'),
    dict(table='Table 1', methods=['oracle'], nets=['unet', 'deeplabv3plus', 'fpn', 'linknet', 'pspnet'],
         targets=['hand', 'snv']),
    dict(table='Table 2 (AdaptSegNet grid, seed 000 §2.2)', methods=['adaptsegnet'], nets=['deeplabv3plus'],
         targets=['hand', 'snv'], grid=True),
    dict(table='Table 2 (grids, seed 000 §2.2)', methods=['dada', 'bdl', 'dise', 'cosine_similarity',
                                                          'depth_distribution'],
         nets=['deeplabv3plus'], targets=['hand', 'snv'], grid=True),
    dict(table='Table 3', methods=['source_only', 'oracle', 'adaptsegnet', 'advent', 'clan', 'dada', 'bdl', 'dise',
                                   'glss', 'cosine_similarity', 'depth_distribution', 'unsup_backprop'],
         nets=['deeplabv3plus'], targets=['cityscapes']),
    dict(table='Supplement Table 1 (SNV)', methods=['adaptsegnet', 'bdl', 'clan', 'advent', 'dada', 'glss'],
         nets=['deeplabv3plus'], targets=['snv'], study='fraction',
         variants=[dict(tag=f'f{f}', set={'method.target_fraction': f}) for f in (0.6, 0.4, 0.2)]),
]
