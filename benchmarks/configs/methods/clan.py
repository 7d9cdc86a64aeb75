# CLAN (Luo 2019): seed 000 §2.2 lr 2.5e-4, weight decay 5e-4, lambda_weight 0.01, lambda_adv 0.001;
# epsilon 0.4, lambda_local 10 (the original's SYNTHIA value), preheat 5 % of the schedule.
_base_ = ['./_adaptation.py']
method = dict(type='clan', lambda_weight=0.01, lambda_adv=1e-3, lambda_local=10.0, epsilon=0.4, preheat_fraction=0.05)
# Controls (--study controls): every target weight 0 (fine-tuning only); target weights x 100
# (the positive control) at target fractions 0.2 and 1.0.
controls = {'finetune': {'method.lambda_adv': 0.0},
            'positive_f0.2': {'method.lambda_adv': 0.1, 'method.target_fraction': 0.2},
            'positive_f1.0': {'method.lambda_adv': 0.1, 'method.target_fraction': 1.0}}
