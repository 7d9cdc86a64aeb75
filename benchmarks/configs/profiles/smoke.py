# Tiny splits for CI: every stage runs a few iterations in seconds.
# Backbones: mmseg's ResNet-V1c and UNet (net.backbone='light', the default).
profile = dict(name='smoke', image_size=32, width=8, depth=18,
               counts=dict(compaq=48, snv=24, hand=24, synthia=24, cityscapes=24),
               seg_epochs=2, seg_batch_size=8, checkpoint_every=50,
               precision='float32', deterministic=True)
