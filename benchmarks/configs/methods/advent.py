# AdvEnt (Vu 2019): lambda_adv 0.001 (seed 000 §2.2), multi-level as the official code.
_base_ = ['./_adaptation.py']
method = dict(type='advent', lambda_adv=1e-3, lambda_adv_aux=2e-4, multi_level=True)
