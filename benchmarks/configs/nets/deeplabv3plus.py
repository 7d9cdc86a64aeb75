# DeepLabv3+ (seed 002 §4.1): binary focal loss (gamma 2, alpha 0.75), RMSprop lr 1e-2.
net = dict(name='deeplabv3plus')
seg_recipe = dict(loss='focal', optimizer=dict(type='RMSprop', lr=1e-2))
