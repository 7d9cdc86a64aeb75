# fpn for Table 1 (seed 002): the paper does not state its recipe; the UNet one is used (Dice + BCE, RMSprop 1e-3).
net = dict(name='fpn')
seg_recipe = dict(loss='dice_bce', optimizer=dict(type='RMSprop', lr=1e-3))
