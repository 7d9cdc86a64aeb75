# DISE (Chang 2019): seed 000 §2.2 grid lambda_seg (the auxiliary head's weight, as the official script;
# the label-transfer main term has weight 1) in {0.1, 0.25, 0.5}, lr 2.5e-4.
_base_ = ['./_adaptation.py']
method = dict(type='dise', lambda_seg=0.1, lambda_adv=2.0, lambda_rec_self=0.5, lambda_gan=0.01,
              lambda_rec_translation=0.05, translator_width=32, image_disc_every=5)
grid = {'method.lambda_seg': [0.1, 0.25, 0.5]}
method_profiles = dict(smoke=dict(method=dict(translator_width=4)), cpu=dict(method=dict(translator_width=16)))
# Controls (--study controls): every target weight 0 (fine-tuning only); target weights x 100
# (the positive control) at target fractions 0.2 and 1.0.
controls = {'finetune': {'method.lambda_adv': 0.0, 'method.lambda_label_transfer': 0.0, 'method.lambda_rec_self': 0.0, 'method.lambda_gan': 0.0, 'method.lambda_rec_translation': 0.0},
            'positive_f0.2': {'method.lambda_adv': 200.0, 'method.target_fraction': 0.2},
            'positive_f1.0': {'method.lambda_adv': 200.0, 'method.target_fraction': 1.0}}
