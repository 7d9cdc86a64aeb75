# MinEnt (Vu 2019): lambda_ent 0.001 (seed 000 §2.2), multi-level as the official code.
_base_ = ['./_adaptation.py']
method = dict(type='minent', lambda_ent=1e-3, lambda_ent_aux=2e-4, multi_level=True)
