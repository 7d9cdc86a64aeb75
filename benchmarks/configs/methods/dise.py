# DISE (Chang 2019): seed 000 §2.2 grid lambda_seg (label transfer) in {0.1, 0.25, 0.5}, lr 2.5e-4.
_base_ = ['./_adaptation.py']
method = dict(type='dise', lambda_seg=0.1, lambda_adv=2.0, lambda_rec_self=0.5, lambda_gan=0.01,
              lambda_rec_translation=0.05, translator_width=32, image_disc_every=5)
grid = {'method.lambda_seg': [0.1, 0.25, 0.5]}
method_profiles = dict(smoke=dict(method=dict(translator_width=4)), cpu=dict(method=dict(translator_width=16)))
