# GLSS as in the paper (seed 002 §4, seed 000 §2.1 and Algorithm 1).
method = dict(
    type='glss',
    # init: the paper is silent ('normal_0.02' is the official code's); edge_tanh: official raw edges
    vae=dict(latent=64, width=128, stem=64, hidden=1024, edge_skip=True, edge_tanh=False, init='kaiming'),
    # RMSprop with Keras's constants (rho 0.9, eps 1e-7), as the paper's Keras code; holdout: the
    # seeded part of the source kept out of VAE training for its diagnostics; kl_warmup: fraction
    # of the iterations over which the KL weight ramps from 0 to 1 (0: none, as the paper)
    vae_train=dict(epochs=150, batch_size=64, optimizer=dict(type='RMSprop', lr=1e-4, alpha=0.9, eps=1e-7),
                   holdout=0.1, kl_warmup=0.0),
    vae_loss=dict(reduction='sum', rec_terms=('mse',), rec_weight=1.0, kl_weight=1.0),
    perceptual=True,
    beta=dict(unet=2.0, deeplabv3plus=3.0),
    # patience None: K fixed iterations; an integer: stop each image at convergence (cap K)
    latent_search=dict(enabled=True, iterations=100, loss='ssim', lr=0.1, betas=(0.9, 0.99), eps=1e-8,
                       init='prior', restarts=1, record_every=None, seed=0, patience=None, tolerance=1e-3),
    predict_batch_size=256,
)
method_profiles = dict(
    smoke=dict(method=dict(vae=dict(width=16, stem=8, hidden=64), vae_train=dict(epochs=2, batch_size=16),
                           latent_search=dict(iterations=5))),
    cpu=dict(method=dict(vae=dict(width=32, stem=16, hidden=256), vae_train=dict(epochs=50, optimizer=dict(lr=1e-3)))),
)
