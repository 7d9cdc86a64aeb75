"""Segmentation networks built through mmseg's ``MODELS`` from config dicts.

The paper used DeepLabv3+ with an Xception backbone and UNet, FPN, Linknet and PSPNet with an
EfficientNet backbone (seed 002 §4.1, Table 1). timm (which would serve those backbones) needs
torchvision, which does not run beside this torch build, so the closest mmseg parts are used:
a ResNet (V1c stem) for DeepLabv3+, FPN, Linknet and PSPNet, and mmseg's UNet. ``width`` scales
every channel count (64 is the usual ResNet/UNet width; the ``cpu`` profile uses less).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS
from mmcv.cnn import ConvModule

NORM = dict(type='BN', requires_grad=True)


@MODELS.register_module()
class LinkNetHead(BaseDecodeHead):
    """LinkNet decoder (Chaurasia & Culurciello 2017): per stage 1x1 reduce, 2x transposed conv,
    1x1 expand, added to the next-shallower encoder stage; a 3x3 conv on the stride-4 sum."""

    def __init__(self, **kwargs):
        super().__init__(input_transform='multiple_select', **kwargs)
        chans = list(self.in_channels)
        self.blocks = nn.ModuleList()
        for deep, shallow in zip(chans[:0:-1], chans[-2::-1]):
            mid = max(deep // 4, 8)
            self.blocks.append(nn.Sequential(
                ConvModule(deep, mid, 1, norm_cfg=self.norm_cfg),
                nn.ConvTranspose2d(mid, mid, 4, stride=2, padding=1), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
                ConvModule(mid, shallow, 1, norm_cfg=self.norm_cfg)))
        self.fuse = ConvModule(chans[0], self.channels, 3, padding=1, norm_cfg=self.norm_cfg)

    def forward(self, inputs):
        feats = self._transform_inputs(inputs)
        x = feats[-1]
        for block, skip in zip(self.blocks, feats[-2::-1]):
            x = block(x)
            x = x[..., :skip.shape[-2], :skip.shape[-1]] + skip
        return self.cls_seg(self.fuse(x))


def _resnet(width: int, depth: int, in_channels: int, output_stride: int):
    strides, dilations = {8: ((1, 2, 1, 1), (1, 1, 2, 4)), 16: ((1, 2, 2, 1), (1, 1, 1, 2)),
                          32: ((1, 2, 2, 2), (1, 1, 1, 1))}[output_stride]
    backbone = dict(type='ResNetV1c', depth=depth, in_channels=in_channels, base_channels=width,
                    stem_channels=width, num_stages=4, out_indices=(0, 1, 2, 3), strides=strides,
                    dilations=dilations, norm_cfg=NORM, norm_eval=False, style='pytorch', contract_dilation=True)
    expansion = 4 if depth >= 50 else 1
    return backbone, [width * expansion * 2 ** i for i in range(4)]


def _head_common(num_classes: int) -> dict:
    binary = num_classes == 1
    return dict(num_classes=2 if binary else num_classes, out_channels=1 if binary else num_classes,
                threshold=0.5 if binary else None, norm_cfg=NORM, align_corners=False, dropout_ratio=0.1,
                loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=binary, loss_weight=1.0))


def segmentor_config(name: str, width: int = 64, depth: int = 18, in_channels: int = 1,
                     num_classes: int = 1, aux_head: bool = False) -> dict:
    """The mmseg ``EncoderDecoder`` config of network ``name``; ``num_classes=1`` is binary (sigmoid).

    ``aux_head`` adds an auxiliary classifier on a lower stage (AdaptSegNet's multi-level output).
    """
    common = _head_common(num_classes)
    neck = None
    if name == 'unet':
        backbone = dict(type='UNet', in_channels=in_channels, base_channels=width, num_stages=5,
                        strides=(1, 1, 1, 1, 1), enc_num_convs=(2, 2, 2, 2, 2), dec_num_convs=(2, 2, 2, 2),
                        downsamples=(True, True, True, True), enc_dilations=(1, 1, 1, 1, 1),
                        dec_dilations=(1, 1, 1, 1), with_cp=False, conv_cfg=None, norm_cfg=NORM,
                        act_cfg=dict(type='ReLU'), upsample_cfg=dict(type='InterpConv'), norm_eval=False)
        head = dict(type='FCNHead', in_channels=width, in_index=4, channels=width, num_convs=1,
                    concat_input=False, **common)
        aux = dict(type='FCNHead', in_channels=width * 4, in_index=2, channels=width, num_convs=1,
                   concat_input=False, **common)
    else:
        stride = {'deeplabv3plus': 16, 'pspnet': 8}.get(name, 32)
        backbone, chans = _resnet(width, depth, in_channels, stride)
        aux = dict(type='FCNHead', in_channels=chans[2], in_index=2, channels=chans[0], num_convs=1,
                   concat_input=False, **common)
        if name == 'deeplabv3plus':
            head = dict(type='DepthwiseSeparableASPPHead', in_channels=chans[3], in_index=3,
                        channels=4 * width, dilations=(1, 6, 12, 18), c1_in_channels=chans[0],
                        c1_channels=max(12, 3 * width // 4), **common)
        elif name == 'pspnet':
            head = dict(type='PSPHead', in_channels=chans[3], in_index=3, channels=4 * width,
                        pool_scales=(1, 2, 3, 6), **common)
        elif name == 'fpn':
            neck = dict(type='FPN', in_channels=chans, out_channels=2 * width, num_outs=4)
            head = dict(type='FPNHead', in_channels=[2 * width] * 4, in_index=[0, 1, 2, 3],
                        feature_strides=[4, 8, 16, 32], channels=2 * width, **common)
        elif name == 'linknet':
            head = dict(type='LinkNetHead', in_channels=chans, in_index=[0, 1, 2, 3], channels=width, **common)
        else:
            raise KeyError(f'unknown network {name!r}; expected one of {sorted(NETWORKS)}')
    cfg = dict(type='EncoderDecoder', backbone=backbone, decode_head=head, train_cfg=dict(), test_cfg=dict(mode='whole'))
    if neck is not None:
        cfg['neck'] = neck
    if aux_head:
        cfg['auxiliary_head'] = aux
    return cfg


NETWORKS = ('deeplabv3plus', 'unet', 'fpn', 'linknet', 'pspnet')

#: Where each network's perceptual features are read (seed 000 §2.1): DeepLabv3+'s last
#: concatenation (upsampled ASPP + projected low-level features, the input of its bottleneck)
#: and the output of UNet's 6th layer: after its 5 encoder stages, the first (deepest) decoder stage.
PERCEPTUAL_LAYER = {'deeplabv3plus': 'decode_head.sep_bottleneck', 'unet': 'backbone.decoder.3'}


def read_state_dict(path: str) -> dict:
    """A plain state dict (names -> tensors; also accepted under a ``state_dict`` key) read with
    ``weights_only=True``; anything else is an error naming the file."""
    from pathlib import Path
    if not Path(path).is_file():
        raise FileNotFoundError(f'--pretrained: no checkpoint file {path}')
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:   # pickled code, numpy objects, a truncated file, not a torch file
        raise ValueError(f'--pretrained: {path} is not a plain state dict of tensors '
                         f'(refused by torch.load(weights_only=True): {type(err).__name__}: {err})') from err
    if isinstance(state, dict) and isinstance(state.get('state_dict'), dict):
        state = state['state_dict']
    if not (isinstance(state, dict) and state and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                      for k, v in state.items())):
        raise ValueError(f'--pretrained: {path} is not a plain state dict (a dict of names to tensors)')
    return state


def load_backbone_weights(backbone: nn.Module, path: str) -> None:
    """Load backbone weights (e.g. ImageNet) from a plain state dict file (``read_state_dict``); a
    ``backbone.`` prefix is stripped. Nothing matching is an error naming the file."""
    state = {k.removeprefix('backbone.'): v for k, v in read_state_dict(path).items()}
    own = backbone.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise ValueError(f'--pretrained: no tensor of {path} matches the backbone ({len(own)} tensors expected, '
                         f'e.g. {next(iter(own))})')
    backbone.load_state_dict(usable, strict=False)


class SegmentationNet(nn.Module):
    """An mmseg segmentor returning logits at input resolution: (N, 1, H, W) binary, else (N, C, H, W)."""

    def __init__(self, name: str, pretrained: str | None = None, **kwargs):
        super().__init__()
        import mmseg.models  # noqa: F401  (registers mmseg's modules)
        self.name = name
        with DefaultScope.overwrite_default_scope('mmseg'):   # mmcv bricks look up mmseg's layers
            self.model = MODELS.build(segmentor_config(name, **kwargs))
        if pretrained:
            load_backbone_weights(self.model.backbone, pretrained)

    def forward(self, images: torch.Tensor, with_aux: bool = False):
        feats = self.model.extract_feat(images)
        size = images.shape[-2:]
        logits = F.interpolate(self.model.decode_head(feats), size, mode='bilinear', align_corners=False)
        if not with_aux:
            return logits
        aux = F.interpolate(self.model.auxiliary_head(feats), size, mode='bilinear', align_corners=False)
        return logits, aux

    def capture(self, images: torch.Tensor, module: str, take: str = 'output'):
        """(logits, activation): a forward pass that also returns ``module``'s input or output."""
        captured = {}

        def grab(_, inputs, output):
            captured['x'] = inputs[0] if take == 'input' else output
        handle = self.model.get_submodule(module).register_forward_hook(grab)
        try:
            logits = self(images)
        finally:
            handle.remove()
        return logits, captured['x']

    def perceptual_features(self, images: torch.Tensor) -> torch.Tensor:
        """Activations of the layer the paper's perceptual loss L_p reads (``PERCEPTUAL_LAYER``)."""
        if self.name not in PERCEPTUAL_LAYER:
            raise KeyError(f'no perceptual layer defined for {self.name!r}; defined for {sorted(PERCEPTUAL_LAYER)}')
        take = 'input' if self.name == 'deeplabv3plus' else 'output'
        return self.capture(images, PERCEPTUAL_LAYER[self.name], take)[1]
