# Seed 000 §2.5 (supplement Table 2): GLSS with a GAN generator instead of the VAE decoder. The
# latent search and its per-profile settings are GLSS's own (read from glss.py); the generative
# model is a DCGAN (methods/gan.py; the supplement's BigGAN is too large for a CPU) trained with
# Radford et al.'s recipe: Adam 2e-4, betas (0.5, 0.999), batch 64; the same 150 epochs as the VAE.
_base_ = ['./glss.py']
method = dict(
    _delete_=True,
    type='glss_gan',
    gan=dict(latent=64, width=64),
    gan_train=dict(epochs=150, batch_size=64, optimizer=dict(type='Adam', lr=2e-4, betas=(0.5, 0.999)),
                   standing_batches=16),
    latent_search={{_base_.method.latent_search}},
    predict_batch_size={{_base_.method.predict_batch_size}},
)
method_profiles = dict(
    _delete_=True,
    smoke=dict(method=dict(gan=dict(width=8), gan_train=dict(epochs=2, batch_size=16, standing_batches=2),
                           latent_search={{_base_.method_profiles.smoke.method.latent_search}})),
    # cpu: 1,800 iterations on 1,200 64x64 images, 8.6 min on one thread (16 min on a loaded machine).
    cpu=dict(method=dict(gan=dict(width=16), gan_train=dict(epochs=100))),
    # paper: the settings above (DCGAN width 64, 150 epochs, 128x128).
    paper=dict(),
)
