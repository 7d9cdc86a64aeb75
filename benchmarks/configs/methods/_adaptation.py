# Shared settings of the methods trained on source + unlabelled target (seed 000 §2.2 and the
# originals): SGD 2.5e-4 / momentum 0.9 / weight decay 5e-4 with the heads and new parts at 10x,
# discriminators Adam 1e-4 (0.9, 0.99), poly 0.9 over max_iters (default: stop_iters times the
# original's horizon ratio). Iterations and batch sizes per profile (the originals: batch 1 at
# 1280x720; here 128x128). BatchNorm as the originals: affine frozen, statistics updated (train mode).
# `controls` (in each method's file): the runs of `--study controls` (see the README), name -> overrides.
method = dict(stop_iters=20000, max_iters=None, batch_size=8, warm_start=True, target_fraction=1.0, bn='affine_frozen',
              optimizer=dict(type='SGD', lr=2.5e-4, momentum=0.9, weight_decay=5e-4), head_lr_mult=10.0,
              disc_optimizer=dict(type='Adam', lr=1e-4, betas=(0.9, 0.99)), poly_power=0.9, diagnostics_every=10)
method_profiles = dict(smoke=dict(method=dict(stop_iters=3, batch_size=4, disc_width=8)),
                       cpu=dict(method=dict(stop_iters=300, batch_size=8, disc_width=32)))
