# The paper's sizes (seed 002 §4-5, seed 000 §2.1): 128x128, all images, 100 epochs, batch 16; for a GPU.
profile = dict(name='paper', image_size=128, width=64, depth=50,
               counts=dict(compaq=None, snv=None, hand=None),
               seg_epochs=100, seg_batch_size=16, checkpoint_every=500)
