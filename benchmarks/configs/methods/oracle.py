# Supervised on target (seed 002 Table 1): 80/20 train/test split of the target.
method = dict(type='oracle')
