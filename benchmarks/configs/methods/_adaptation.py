# Shared settings of the methods trained on source + unlabelled target (seed 000 §2.2 and the
# originals): SGD 2.5e-4 / momentum 0.9 / weight decay 5e-4, discriminators Adam 1e-4 (0.9, 0.99),
# poly 0.9. Iterations and batch sizes per profile (the originals: batch 1 at 1280x720; here 128x128).
# BatchNorm frozen as in the originals (their DeepLab-v2 ResNet-101).
method = dict(iterations=20000, batch_size=8, warm_start=True, target_fraction=1.0, freeze_bn=True,
              optimizer=dict(type='SGD', lr=2.5e-4, momentum=0.9, weight_decay=5e-4),
              disc_optimizer=dict(type='Adam', lr=1e-4, betas=(0.9, 0.99)), poly_power=0.9)
method_profiles = dict(smoke=dict(method=dict(iterations=3, batch_size=4, disc_width=8)),
                       cpu=dict(method=dict(iterations=300, batch_size=8, disc_width=32)))
