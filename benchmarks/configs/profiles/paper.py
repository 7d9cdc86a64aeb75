# The paper's sizes (seed 002 §4-5, seed 000 §2.1): 128x128, all images, 100 epochs, batch 16; for a GPU.
# The paper's backbones (seed 002 §4.1): Xception-65 for DeepLabv3+, EfficientNet for UNet, FPN,
# Linknet and PSPNet (B4, as the official code's U-EfficientNet; the paper names no size).
profile = dict(name='paper', image_size=128, width=64, depth=50,
               counts=dict(compaq=None, snv=None, hand=None, synthia=None, cityscapes=None),
               seg_epochs=100, seg_batch_size=16, checkpoint_every=500,
               precision='float32', deterministic=True)
# precision: 'float32' as the paper; on a GPU 'tf32' (TF32 matmuls and convolutions) or 'bf16' (autocast of
# the forward passes; losses and SSIM in float32) trade exactness for speed. deterministic: cuDNN's
# deterministic kernels without autotuning (False: cudnn.benchmark). Both are recorded in each result.
net = dict(backbone='paper', efficientnet='b4')
