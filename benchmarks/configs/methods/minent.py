# MinEnt (Vu 2019): lambda_ent 0.001 (seed 000 §2.2), multi-level as the official code.
_base_ = ['./_adaptation.py']
method = dict(type='minent', lambda_ent=1e-3, lambda_ent_aux=2e-4, multi_level=True)
# Controls (--study controls): every target weight 0 (fine-tuning only); target weights x 100
# (the positive control) at target fractions 0.2 and 1.0.
controls = {'finetune': {'method.lambda_ent': 0.0, 'method.lambda_ent_aux': 0.0},
            'positive_f0.2': {'method.lambda_ent': 0.1, 'method.lambda_ent_aux': 0.02, 'method.target_fraction': 0.2},
            'positive_f1.0': {'method.lambda_ent': 0.1, 'method.lambda_ent_aux': 0.02, 'method.target_fraction': 1.0}}
