# The cheaper rows of the `cpu` plan, self-contained, to check on another kind of CPU whether the
# paired findings hold there (one seed is another network on another CPU kind, so none of these runs
# pairs with a committed file made elsewhere): Source Only, the output-space adversarial baselines,
# cosine similarity and depth distribution on DeepLabv3+ (default points) with their fine-tuning and
# positive controls; on UNet the baselines' rows, fine-tuning controls and the strong positive control
# on SNV. 192 runs, about 4 CPU-hours (recorded: 4.2 on an Intel Xeon, 4.0 on an AMD EPYC), 2 h wall
# on 2 cores with two one-thread runs at a time:
# `python tools/sweep.py --plan cross_cpu --results-dir results/<cpu> --tables results/<cpu>/tables`
profile = 'cpu'
seeds = [0, 1, 2]
threads = 1
timeout_min = 120
FAST = ['adaptsegnet', 'advent', 'clan', 'dada']
groups = [
    dict(table='Table 2', methods=['source_only'] + FAST + ['cosine_similarity', 'depth_distribution'],
         nets=['deeplabv3plus'], targets=['hand', 'snv']),
    dict(table='Controls', methods=FAST + ['cosine_similarity', 'depth_distribution'],
         nets=['deeplabv3plus'], targets=['hand', 'snv'], study='controls', controls=['finetune']),
    dict(table='Controls', methods=FAST, nets=['deeplabv3plus'], targets=['hand', 'snv'], study='controls',
         controls=['positive_f0.2', 'positive_f1.0']),
    dict(table='Table 2', methods=['source_only'] + FAST, nets=['unet'], targets=['hand', 'snv']),
    dict(table='Controls', methods=FAST, nets=['unet'], targets=['hand', 'snv'], study='controls', controls=['finetune']),
    dict(table='Controls', methods=FAST, nets=['unet'], targets=['snv'], study='controls', controls=['positive_f1.0']),
]
