# Depth distribution (Wu & Liu 2022, seed 004; official configs/synthia_to_cityscapes_16cls.py):
# seg 1.0, depth 0.005, source balance 0.01, target balance 0.05, target adversarial 0.05; SGD
# 2.5e-4 poly 0.9 (one group), discriminator Adam 1e-3 (0.9, 0.99); 90k adversarial iterations,
# then 30k of self-training (stop_iters / 3); pseudo-labels: confidence 0.9 and the spatial prior.
_base_ = ['./_adaptation.py']
method = dict(type='depth_distribution', lambda_seg=1.0, lambda_depth=0.005, lambda_balance=0.01,
              lambda_target_balance=0.05, lambda_adv=0.05, components=5, confidence=0.9, region_base0=50.0,
              region_base1=4950.0, self_training_iters=None, disc_optimizer=dict(type='Adam', lr=1e-3, betas=(0.9, 0.99)))
grid = {'method.lambda_adv': [0.01, 0.05], 'method.confidence': [0.8, 0.9]}
# Controls (--study controls): every target weight 0 and no self-training (fine-tuning only).
controls = {'finetune': {'method.lambda_adv': 0.0, 'method.lambda_target_balance': 0.0, 'method.self_training_iters': 0}}
