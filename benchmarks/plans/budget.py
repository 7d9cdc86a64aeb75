# Issue 11's budget probe: AdvEnt on DeepLabv3+ at higher segmentation learning rates (the `cpu`
# profile's 300 iterations), each with its fine-tuning and positive (x100, fraction 1.0) controls.
# `python tools/sweep.py --plan budget --results-dir results/budget --tables results/budget/tables`
profile = 'cpu'
seeds = [0, 1, 2]
threads = 1
timeout_min = 120
LRS = {'lr10': 2.5e-3, 'lr40': 1e-2}
groups = [dict(table='Budget probe', methods=['advent'], nets=['deeplabv3plus'], targets=['hand', 'snv'],
               study=study, controls=controls,
               variants=[dict(tag=tag, set={'method.optimizer.lr': lr}) for tag, lr in LRS.items()])
          for study, controls in (('main', False), ('controls', ['finetune', 'positive_f1.0']))]
