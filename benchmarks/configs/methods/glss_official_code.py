# GLSS with the official code's choices where they differ from the paper (README lists each):
# reconstruction MSE + MAE (means) x10, KL x5, perceptual MSE x2 (DL-script); latent search on the
# MSE gradient, Adam lr 0.01, eps 1e-9, 50 iterations; weights initialised N(0, 0.02).
_base_ = ['./glss.py']
method = dict(
    vae=dict(init='normal_0.02'),
    vae_loss=dict(reduction='mean', rec_terms=('mse', 'mae'), rec_weight=10.0, kl_weight=5.0),
    beta=dict(unet=2.0, deeplabv3plus=2.0),
    latent_search=dict(iterations=50, loss='mse', lr=0.01, eps=1e-9),
    predict_batch_size=64,
)
