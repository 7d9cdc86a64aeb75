# Reduced sizes for a laptop's CPU: 64x64 images, narrow networks, a few minutes a run on 2 cores.
# Backbones: mmseg's ResNet-V1c (depth 18) and UNet (net.backbone='light', the default), not the paper's.
profile = dict(name='cpu', image_size=64, width=16, depth=18,
               counts=dict(compaq=1200, snv=300, hand=250, synthia=1200, cityscapes=500),
               seg_epochs=12, seg_batch_size=16, checkpoint_every=100,
               precision='float32', deterministic=True)
