# DADA (Vu 2019): seg 1.0, depth 0.001, adv 0.001; seed 000 §2.2 grid over lambda_seg x lr.
_base_ = ['./_adaptation.py']
method = dict(type='dada', lambda_seg=1.0, lambda_depth=1e-3, lambda_adv=1e-3)
grid = {'method.lambda_seg': [0.25, 0.5, 1.0], 'method.optimizer.lr': [2.5e-4, 1e-4, 3e-4]}
