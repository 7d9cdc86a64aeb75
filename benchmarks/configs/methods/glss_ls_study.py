# Seed 002 Fig. 5: target IoU every 10 latent-search iterations, for the SSIM, MSE and MAE objectives.
_base_ = ['./glss.py']
method = dict(latent_search=dict(record_every=10))
grid = {'method.latent_search.loss': ['ssim', 'mse', 'mae']}
