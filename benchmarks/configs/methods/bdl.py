# BDL (Li 2019): seed 000 §2.2 segmentation lr 2.5e-4, discriminator lr 1e-4, grid lambda_adv_target.
# Translation: CycleGAN (cycle 10, identity 0.5, LSGAN, Adam 2e-4 / (0.5, 0.999)), batch 4;
# perceptual x0.1 (translated) and x10 (reconstructed); 2 rounds.
_base_ = ['./_adaptation.py']
method = dict(type='bdl', lambda_adv_target=1e-3, lambda_ssl=1.0, rounds=2, ssl_cap=0.9,
              translation=dict(iterations=2000, batch_size=4, width=64, downs=2, blocks=9, disc_width=64))
grid = {'method.lambda_adv_target': [1e-3, 2e-3, 5e-3]}
method_profiles = dict(smoke=dict(method=dict(translation=dict(iterations=2, batch_size=2, width=4, blocks=1, disc_width=4))),
                       cpu=dict(method=dict(translation=dict(iterations=150, width=16, blocks=3, disc_width=16))))
# Controls (--study controls): every target weight 0 (fine-tuning only); target weights x 100
# (the positive control) at target fractions 0.2 and 1.0.
controls = {'finetune': {'method.lambda_adv_target': 0.0, 'method.lambda_ssl': 0.0},
            'positive_f0.2': {'method.lambda_adv_target': 0.1, 'method.target_fraction': 0.2},
            'positive_f1.0': {'method.lambda_adv_target': 0.1, 'method.target_fraction': 1.0}}
