# Seed 002 Table 4: the eight combinations of edge skip, perceptual loss L_p and latent search.
# Without LS the mask comes from the VAE's reconstruction of the target through the encoder mean.
_base_ = ['./glss.py']
grid = {'method.vae.edge_skip': [True, False], 'method.perceptual': [True, False],
        'method.latent_search.enabled': [True, False]}
