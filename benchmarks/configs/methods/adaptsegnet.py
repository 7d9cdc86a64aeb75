# AdaptSegNet (Tsai 2018), multi-level; seed 000 §2.2 grid-searches lambda_adv_target1 x lambda_adv_target2
# (values not given there: a grid around the original 2e-4 / 1e-3).
_base_ = ['./_adaptation.py']
method = dict(type='adaptsegnet', lambda_seg=0.1, lambda_adv_target1=2e-4, lambda_adv_target2=1e-3)
grid = {'method.lambda_adv_target1': [2e-4, 1e-3], 'method.lambda_adv_target2': [1e-3, 5e-3]}
# Controls (--study controls): every target weight 0 (fine-tuning only); target weights x 100
# (the positive control) at target fractions 0.2 and 1.0.
controls = {'finetune': {'method.lambda_adv_target1': 0.0, 'method.lambda_adv_target2': 0.0},
            'positive_f0.2': {'method.lambda_adv_target1': 0.02, 'method.lambda_adv_target2': 0.1, 'method.target_fraction': 0.2},
            'positive_f1.0': {'method.lambda_adv_target1': 0.02, 'method.lambda_adv_target2': 0.1, 'method.target_fraction': 1.0}}
