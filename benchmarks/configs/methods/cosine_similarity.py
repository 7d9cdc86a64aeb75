# Cosine similarity between spatial features (Chung 2022, seed 003): self-training to BDL-style
# pseudo-labels (median per class, cap 0.9) plus the thresholded cosine loss against a class-wise
# dictionary of the latest correctly classified source features; no adversarial loss. The threshold
# 0.5 is the supplement's example; dictionary size and weights are the suite's choices (grid below).
_base_ = ['./_adaptation.py']
method = dict(type='cosine_similarity', lambda_cos=1.0, lambda_ssl=1.0, threshold=0.5, dictionary_size=1024, ssl_cap=0.9)
grid = {'method.threshold': [0.3, 0.5, 0.7], 'method.lambda_cos': [0.1, 1.0]}
method_profiles = dict(smoke=dict(method=dict(dictionary_size=64)))
# Controls (--study controls): every target weight 0 (fine-tuning only); the cosine loss alone x 10.
controls = {'finetune': {'method.lambda_cos': 0.0, 'method.lambda_ssl': 0.0},
            'positive_f0.2': {'method.lambda_cos': 10.0, 'method.target_fraction': 0.2},
            'positive_f1.0': {'method.lambda_cos': 10.0, 'method.target_fraction': 1.0}}
