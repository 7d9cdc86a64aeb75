# Unsupervised segmentation by backpropagation (seed 001 §2.2; Kanezaki 2018, Kim et al. TIP 2020),
# the official TIP demo's settings: 100 channels, 2 conv blocks, SGD lr 0.1 momentum 0.9, at most
# 1,000 iterations, stop at 3 labels, similarity and continuity weights 1 (stepsize_sim, stepsize_con).
# Its clusters take the Source Only network's majority class (a label-free refinement baseline).
method = dict(type='unsup_backprop', channels=100, convs=2, max_iters=1000, min_labels=3, lr=0.1, momentum=0.9,
              sim_weight=1.0, con_weight=1.0, predict_batch_size=64)
method_profiles = dict(
    smoke=dict(method=dict(channels=8, max_iters=5)),
    # cpu: 32 channels, at most 100 iterations per image (speed; README deviations)
    cpu=dict(method=dict(channels=32, max_iters=100)),
)
