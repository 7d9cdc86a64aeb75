# DADA (Vu 2019): seg 1.0, depth 0.001, adv 0.001; seed 000 §2.2 grid over lambda_seg x lr, its best
# point (lambda_seg 0.5, lr 2.5e-4) the default.
_base_ = ['./_adaptation.py']
method = dict(type='dada', lambda_seg=0.5, lambda_depth=1e-3, lambda_adv=1e-3)
grid = {'method.lambda_seg': [0.25, 0.5, 1.0], 'method.optimizer.lr': [2.5e-4, 1e-4, 3e-4]}
# Controls (--study controls): every target weight 0 (fine-tuning only); target weights x 100
# (the positive control) at target fractions 0.2 and 1.0.
controls = {'finetune': {'method.lambda_adv': 0.0},
            'positive_f0.2': {'method.lambda_adv': 0.1, 'method.target_fraction': 0.2},
            'positive_f1.0': {'method.lambda_adv': 0.1, 'method.target_fraction': 1.0}}
