# GLSS as in the paper (seed 002 §4, seed 000 §2.1 and Algorithm 1).
method = dict(
    type='glss',
    vae=dict(latent=64, width=128, stem=64, hidden=1024, edge_skip=True),
    vae_train=dict(epochs=150, batch_size=64, optimizer=dict(type='RMSprop', lr=1e-4)),
    vae_loss=dict(reduction='sum', rec_terms=('mse',), rec_weight=1.0, kl_weight=1.0),
    perceptual=True,
    beta=dict(unet=2.0, deeplabv3plus=3.0),
    latent_search=dict(enabled=True, iterations=100, loss='ssim', lr=0.1, betas=(0.9, 0.99), eps=1e-8,
                       init='prior', restarts=1, record_every=None, seed=0),
    predict_batch_size=256,
)
method_profiles = dict(
    smoke=dict(method=dict(vae=dict(width=16, stem=8, hidden=64), vae_train=dict(epochs=2, batch_size=16),
                           latent_search=dict(iterations=5))),
    cpu=dict(method=dict(vae=dict(width=32, stem=16, hidden=256), vae_train=dict(epochs=50, optimizer=dict(lr=1e-3)))),
)
