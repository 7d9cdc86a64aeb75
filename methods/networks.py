"""Segmentation networks built through mmseg's ``MODELS`` from config dicts.

The paper used DeepLabv3+ with an Xception backbone and UNet, FPN, Linknet and PSPNet with an
EfficientNet backbone (seed 002 §4.1, Table 1). ``backbone='paper'`` builds those (``backbones``:
Xception-65 at output stride 16; EfficientNet-``efficientnet``, B4 by default as in the official
code, with a UNet decoder for UNet). ``backbone='light'`` (the ``cpu``/``smoke`` profiles) builds
mmseg's parts instead: a ResNet (V1c stem, ``depth``) for DeepLabv3+, FPN, Linknet and PSPNet,
and mmseg's UNet. ``width`` scales the heads' (and the light backbones') channel counts (64 is the
usual width; the ``cpu`` profile uses less).
"""
from __future__ import annotations

import logging

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS
from mmcv.cnn import ConvModule

from . import backbones

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


def _paper_backbone(name: str, width: int, in_channels: int, efficientnet: str):
    """(backbone, neck, feature channels, main head's in_index, aux head's in_index) of the paper's nets."""
    if name == 'deeplabv3plus':
        return (dict(type='XceptionAligned', in_channels=in_channels, output_stride=16), None,
                [256, 728, 728, 2048], 3, 2)
    chans = backbones.EfficientNet.out_channels(efficientnet)
    backbone = dict(type='EfficientNet', arch=efficientnet, in_channels=in_channels,
                    output_stride=8 if name == 'pspnet' else 32)
    if name == 'unet':
        decoder = [4 * width, 2 * width, width, width // 2, width // 4]
        return backbone, dict(type='UNetDecoder', in_channels=chans, channels=decoder), [chans[-1], *decoder], 5, 3
    return backbone, None, chans, 4, 3


def segmentor_config(name: str, width: int = 64, depth: int = 18, in_channels: int = 1,
                     num_classes: int = 1, aux_head: bool = False, backbone: str = 'light',
                     efficientnet: str = 'b4') -> dict:
    """The mmseg ``EncoderDecoder`` config of network ``name``; ``num_classes=1`` is binary (sigmoid).

    ``backbone``: ``'paper'`` (Xception-65 / EfficientNet-``efficientnet``) or ``'light'`` (ResNet-V1c
    of ``depth`` / mmseg's UNet). ``aux_head`` adds an auxiliary classifier on a lower stage
    (AdaptSegNet's multi-level output).
    """
    if backbone not in ('light', 'paper'):
        raise ValueError(f"net.backbone must be 'light' or 'paper', got {backbone!r}")
    if name not in NETWORKS:
        raise KeyError(f'unknown network {name!r}; expected one of {sorted(NETWORKS)}')
    common = _head_common(num_classes)
    neck = None
    if backbone == 'paper':
        backbone_cfg, neck, chans, main, aux_index = _paper_backbone(name, width, in_channels, efficientnet)
        levels = [1, 2, 3, 4]   # EfficientNet's strides 4..32 for FPN and Linknet
    elif name == 'unet':
        backbone_cfg = dict(type='UNet', in_channels=in_channels, base_channels=width, num_stages=5,
                            strides=(1, 1, 1, 1, 1), enc_num_convs=(2, 2, 2, 2, 2), dec_num_convs=(2, 2, 2, 2),
                            downsamples=(True, True, True, True), enc_dilations=(1, 1, 1, 1, 1),
                            dec_dilations=(1, 1, 1, 1), with_cp=False, conv_cfg=None, norm_cfg=NORM,
                            act_cfg=dict(type='ReLU'), upsample_cfg=dict(type='InterpConv'), norm_eval=False)
        chans, main, aux_index = [width * 16, width * 8, width * 4, width * 2, width], 4, 2
    else:
        stride = {'deeplabv3plus': 16, 'pspnet': 8}.get(name, 32)
        backbone_cfg, chans = _resnet(width, depth, in_channels, stride)
        main, aux_index, levels = 3, 2, [0, 1, 2, 3]
    aux_channels = chans[0] if backbone == 'light' and name != 'unet' else width
    aux_in = 2 * width if name == 'fpn' else chans[aux_index]   # FPN's heads read its neck's levels
    aux_index = 2 if name == 'fpn' else aux_index
    aux = dict(type='FCNHead', in_channels=aux_in, in_index=aux_index, channels=aux_channels,
               num_convs=1, concat_input=False, **common)
    if name == 'unet':   # a classifier on the decoder's last output (a 1x1 conv for the paper's UNet)
        convs = 0 if backbone == 'paper' else 1
        head = dict(type='FCNHead', in_channels=chans[main], in_index=main, channels=chans[main], num_convs=convs,
                    concat_input=False, **common)
    elif name == 'deeplabv3plus':
        head = dict(type='DepthwiseSeparableASPPHead', in_channels=chans[main], in_index=main,
                    channels=4 * width, dilations=(1, 6, 12, 18), c1_in_channels=chans[0],
                    c1_channels=max(12, 3 * width // 4), **common)
    elif name == 'pspnet':
        head = dict(type='PSPHead', in_channels=chans[main], in_index=main, channels=4 * width,
                    pool_scales=(1, 2, 3, 6), **common)
    elif name == 'fpn':
        neck = dict(type='FPN', in_channels=chans, out_channels=2 * width, num_outs=4, start_level=levels[0])
        head = dict(type='FPNHead', in_channels=[2 * width] * 4, in_index=[0, 1, 2, 3],
                    feature_strides=[4, 8, 16, 32], channels=2 * width, **common)
    else:
        head = dict(type='LinkNetHead', in_channels=[chans[i] for i in levels], in_index=levels, channels=width,
                    **common)
    cfg = dict(type='EncoderDecoder', backbone=backbone_cfg, decode_head=head, train_cfg=dict(),
               test_cfg=dict(mode='whole'))
    if neck is not None:
        cfg['neck'] = neck
    if aux_head:
        cfg['auxiliary_head'] = aux
    return cfg


NETWORKS = ('deeplabv3plus', 'unet', 'fpn', 'linknet', 'pspnet')

#: Where each network's perceptual features are read (seed 000 §2.1), per backbone: DeepLabv3+'s
#: last concatenation (upsampled ASPP + projected low-level features, the input of its bottleneck)
#: and the output of UNet's 6th layer: after its 5 encoder stages, the first (deepest) decoder stage.
PERCEPTUAL_LAYER = {'deeplabv3plus': dict(light='decode_head.sep_bottleneck', paper='decode_head.sep_bottleneck'),
                    'unet': dict(light='backbone.decoder.3', paper='neck.blocks.0')}


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
    ``backbone.`` prefix is stripped. Tensors are matched by name and shape, so a timm ImageNet state
    dict of ``xception65`` or ``efficientnet_b4``/``tf_efficientnet_b4`` loads into the paper
    backbones (whose modules carry timm's names); its classifier is ignored. A 3-channel first conv
    is summed over its input channels for a 1-channel backbone: the same as feeding the single
    channel replicated three times, as the official code fed its red channel. Nothing matching is an
    error naming the file."""
    state = {k.removeprefix('backbone.'): v for k, v in read_state_dict(path).items()}
    own = backbone.state_dict()
    for key, value in state.items():
        if value.dim() == 4 and value.shape[1] == 3 and key in own and own[key].shape == (value.shape[0], 1, *value.shape[2:]):
            state[key] = value.sum(1, keepdim=True)
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise ValueError(f'--pretrained: no tensor of {path} matches the backbone ({len(own)} tensors expected, '
                         f'e.g. {next(iter(own))})')
    backbone.load_state_dict(usable, strict=False)
    logging.getLogger('udabench').info('--pretrained: loaded %d of the backbone\'s %d tensors from %s',
                                       len(usable), len(own), path)


def regression_convs(channels: int) -> nn.Sequential:
    """The depth (and density) head of DADA and of the depth-distribution method on features of
    ``channels`` channels: 1x1 conv C -> C/4, ReLU, 3x3 conv, ReLU, 1x1 conv -> C/16 (the originals:
    2048 -> 512 -> 512 -> 128 on ResNet-101's layer4); their prediction is its output's channel mean."""
    mid, out = max(channels // 4, 8), max(channels // 16, 4)
    return nn.Sequential(nn.Conv2d(channels, mid, 1), nn.ReLU(inplace=True),
                         nn.Conv2d(mid, mid, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(mid, out, 1))


class SegmentationNet(nn.Module):
    """An mmseg segmentor returning logits at input resolution: (N, 1, H, W) binary, else (N, C, H, W)."""

    def __init__(self, name: str, pretrained: str | None = None, **kwargs):
        super().__init__()
        import mmseg.models  # noqa: F401  (registers mmseg's modules)
        self.name, self.backbone = name, kwargs.get('backbone', 'light')
        self.num_classes = kwargs.get('num_classes', 1)
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
        return self.capture(images, PERCEPTUAL_LAYER[self.name][self.backbone], take)[1]
