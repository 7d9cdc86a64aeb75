# UNet (seed 002 §4.1, seed 000 Eq. 1): Dice + BCE, RMSprop lr 1e-3.
net = dict(name='unet')
seg_recipe = dict(loss='dice_bce', optimizer=dict(type='RMSprop', lr=1e-3))
