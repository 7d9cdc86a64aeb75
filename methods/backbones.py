"""The paper's backbones (seed 002 §4.1), written from their papers and registered in mmseg's ``MODELS``.

* ``XceptionAligned``: the modified (aligned) Xception-65 of DeepLabv3+ (Chen et al. 2018, §3.2,
  Fig. 4): entry flow, 16 middle-flow blocks, exit flow; every max pooling replaced by a depthwise
  separable conv with stride; BN + ReLU after each 3x3 depthwise conv (and, as in MobileNet, after
  each pointwise conv); output stride 16 by atrous convs in the exit flow.
* ``EfficientNet``: Tan & Le 2019 (MBConv with squeeze-excitation, swish, compound scaling;
  B0-B7); stochastic depth 0.2 as in the paper.
* ``UNetDecoder``: the UNet decoder that segmentation_models_pytorch puts on an encoder
  (Ronneberger et al. 2015; the official GLSS code's U-EfficientNet): per stage a 2x upsampling,
  concatenation with the encoder feature of that stride and two conv3x3-BN-ReLU.

Module names follow timm's (``stem.0.conv``, ``blocks.3.stack.conv1.conv_dw`` ...; ``conv_stem``,
``blocks.1.0.conv_pw``, ``se.conv_reduce`` ...), so that a timm ImageNet state dict loads by name
(``networks.load_backbone_weights``). With ``num_classes`` > 0 the ImageNet classifier is built
too (``head.fc`` / ``conv_head``, ``bn2``, ``classifier``), only to count parameters against the
published figures; the segmentation networks build the backbones without it.

Deviation: TF's Xception-65 checkpoint (and timm's port) applies ReLU *before* each separable conv
instead of after its depthwise and pointwise BN; the parameters, and so the weight layout, are the
same. The paper's text is followed.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.registry import MODELS

#: TF's BN settings, used by both papers' reference code (momentum 0.01 here = decay 0.99 there).
BN = dict(eps=1e-3, momentum=0.01)


class ConvBN(nn.Sequential):
    """conv + BN (+ ReLU); timm's ``ConvNormAct`` names (``conv``, ``bn``)."""

    def __init__(self, cin, cout, kernel, stride=1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout, **BN)
        if act:
            self.act = nn.ReLU(inplace=True)


# --------------------------------------------------------------------------------------- Xception
class SeparableConv2d(nn.Module):
    """3x3 depthwise conv + BN + ReLU, then 1x1 pointwise conv + BN + ReLU (Chen et al. 2018, §3.2)."""

    def __init__(self, cin, cout, stride=1, dilation=1):
        super().__init__()
        self.conv_dw = nn.Conv2d(cin, cin, 3, stride, dilation, dilation, groups=cin, bias=False)
        self.bn_dw = nn.BatchNorm2d(cin, **BN)
        self.conv_pw = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn_pw = nn.BatchNorm2d(cout, **BN)

    def forward(self, x):
        return F.relu(self.bn_pw(self.conv_pw(F.relu(self.bn_dw(self.conv_dw(x))))))


class XceptionBlock(nn.Module):
    """Three separable convs (the last one strided) with a 1x1-conv, identity or no shortcut."""

    def __init__(self, cin, couts, stride=1, dilation=1, skip=True):
        super().__init__()
        chans = [cin, *couts]
        self.stack = nn.Sequential()
        for i in range(3):
            self.stack.add_module(f'conv{i + 1}', SeparableConv2d(chans[i], chans[i + 1], stride if i == 2 else 1, dilation))
        self.skip = skip
        self.shortcut = ConvBN(cin, couts[-1], 1, stride, act=False) if skip and (stride > 1 or cin != couts[-1]) else None

    def forward(self, x, with_pre_stride: bool = False):
        """The block's output, and with ``with_pre_stride`` also its second conv's output (before the stride)."""
        pre = self.stack.conv2(self.stack.conv1(x))
        out = self.stack.conv3(pre)
        if self.skip:
            out = out + (x if self.shortcut is None else self.shortcut(x))
        return (out, pre) if with_pre_stride else out


@MODELS.register_module()
class XceptionAligned(BaseModule):
    """Xception-65 (``depth=65``, 16 middle blocks) for DeepLabv3+.

    Returns four maps: the stride-4 low-level feature (entry block 2 before its stride, 256 ch; the
    one DeepLabv3+'s decoder reads), the stride-8 one (entry block 3 before its stride, 728 ch), the
    middle flow's output (728 ch; the auxiliary head reads it) and the exit flow's (2048 ch), the
    last two at ``output_stride`` (16 by default: the exit flow's stride becomes dilation 2).
    """

    def __init__(self, in_channels: int = 1, middle_blocks: int = 16, output_stride: int = 16,
                 num_classes: int = 0, init_cfg=None):
        super().__init__(init_cfg)
        if output_stride not in (8, 16, 32):
            raise ValueError(f'XceptionAligned: output_stride must be 8, 16 or 32, got {output_stride}')
        self.stem = nn.Sequential(ConvBN(in_channels, 32, 3, 2), ConvBN(32, 64, 3))
        cfg = [(64, (128,) * 3, 2, True), (128, (256,) * 3, 2, True), (256, (728,) * 3, 2, True),
               *[(728, (728,) * 3, 1, True)] * middle_blocks,
               (728, (728, 1024, 1024), 2, True), (1024, (1536, 1536, 2048), 1, False)]
        self.blocks = nn.Sequential()
        stride, dilation = 2, 1
        for i, (cin, couts, s, skip) in enumerate(cfg):
            block_dilation = dilation
            if s > 1 and stride * s > output_stride:   # atrous instead of stride beyond the output stride
                dilation, s = dilation * s, 1
            stride *= s
            self.blocks.add_module(str(i), XceptionBlock(cin, couts, s, block_dilation, skip))
        self.middle_end = 2 + middle_blocks   # index of the last middle-flow block
        self.num_features = 2048
        if num_classes:
            self.head = nn.Module()
            self.head.fc = nn.Linear(2048, num_classes)

    def forward(self, x):
        x = self.stem(x)
        x = self.blocks[0](x)
        x, low = self.blocks[1](x, with_pre_stride=True)
        x, mid = self.blocks[2](x, with_pre_stride=True)
        for block in self.blocks[3:self.middle_end + 1]:
            x = block(x)
        middle = x
        for block in self.blocks[self.middle_end + 1:]:
            x = block(x)
        return low, mid, middle, x


# ----------------------------------------------------------------------------------- EfficientNet
#: (width multiplier, depth multiplier) of B0-B7 (Tan & Le 2019, §3.3 and the reference code).
EFFICIENTNET_SCALES = {'b0': (1.0, 1.0), 'b1': (1.0, 1.1), 'b2': (1.1, 1.2), 'b3': (1.2, 1.4),
                       'b4': (1.4, 1.8), 'b5': (1.6, 2.2), 'b6': (1.8, 2.6), 'b7': (2.0, 3.1)}
#: EfficientNet-B0's stages (Tan & Le 2019, Table 1): expansion, kernel, stride, channels, repeats.
EFFICIENTNET_B0 = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
                   (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))


def round_channels(channels: float, multiplier: float, divisor: int = 8) -> int:
    """Channels scaled by the width multiplier, rounded to a multiple of 8 (never 10 % below)."""
    scaled = channels * multiplier
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018) with swish, reduced to a quarter of the block's input."""

    def __init__(self, channels, reduced):
        super().__init__()
        self.conv_reduce = nn.Conv2d(channels, reduced, 1)
        self.conv_expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.conv_expand(F.silu(self.conv_reduce(x.mean((2, 3), keepdim=True)))))


class MBConv(nn.Module):
    """Mobile inverted bottleneck (Sandler et al. 2018) with SE: 1x1 expand (skipped when the
    expansion is 1), kxk depthwise, SE, 1x1 project; identity shortcut with stochastic depth."""

    def __init__(self, cin, cout, expansion, kernel, stride, dilation, drop_path):
        super().__init__()
        mid = cin * expansion
        self.expand = expansion != 1
        if self.expand:
            self.conv_pw = nn.Conv2d(cin, mid, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(mid, **BN)
        self.conv_dw = nn.Conv2d(mid, mid, kernel, stride, dilation * (kernel - 1) // 2, dilation, groups=mid, bias=False)
        bn_dw = nn.BatchNorm2d(mid, **BN)
        self.se = SqueezeExcite(mid, max(1, int(cin * 0.25)))
        project = nn.Conv2d(mid, cout, 1, bias=False)
        bn_out = nn.BatchNorm2d(cout, **BN)
        # timm's names: (conv_pw, bn1, conv_dw, bn2, se, conv_pwl, bn3), or (conv_dw, bn1, se, conv_pw, bn2)
        if self.expand:
            self.bn2, self.conv_pwl, self.bn3 = bn_dw, project, bn_out
        else:
            self.bn1, self.conv_pw, self.bn2 = bn_dw, project, bn_out
        self.residual = stride == 1 and cin == cout
        self.drop_path = drop_path

    def forward(self, x):
        if self.expand:
            h = F.silu(self.bn1(self.conv_pw(x)))
            h = self.se(F.silu(self.bn2(self.conv_dw(h))))
            h = self.bn3(self.conv_pwl(h))
        else:
            h = self.se(F.silu(self.bn1(self.conv_dw(x))))
            h = self.bn2(self.conv_pw(h))
        if not self.residual:
            return h
        if self.training and self.drop_path > 0:   # stochastic depth: drop the whole branch per sample
            keep = 1 - self.drop_path
            h = h * x.new_empty(x.shape[0], 1, 1, 1).bernoulli_(keep) / keep
        return x + h


@MODELS.register_module()
class EfficientNet(BaseModule):
    """EfficientNet-B0..B7 (``arch``) with ``in_channels`` inputs.

    Returns the last feature of each resolution, strides 2, 4, 8, 16, 32 (B4: 24, 32, 56, 160, 448
    channels; ``out_channels(arch)``); with ``output_stride`` 8 or 16 the later strides become
    dilations (as DeepLab does for ResNets). ``drop_path_rate`` is the stochastic-depth rate of the
    last block, linearly smaller for earlier ones (Huang et al. 2016; 0.2 in the paper).
    """

    def __init__(self, arch: str = 'b4', in_channels: int = 1, output_stride: int = 32,
                 drop_path_rate: float = 0.2, num_classes: int = 0, init_cfg=None):
        super().__init__(init_cfg)
        if arch not in EFFICIENTNET_SCALES:
            raise ValueError(f'EfficientNet: unknown arch {arch!r}; expected one of {sorted(EFFICIENTNET_SCALES)}')
        if output_stride not in (8, 16, 32):
            raise ValueError(f'EfficientNet: output_stride must be 8, 16 or 32, got {output_stride}')
        width, depth = EFFICIENTNET_SCALES[arch]
        stem = round_channels(32, width)
        self.conv_stem = nn.Conv2d(in_channels, stem, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem, **BN)
        repeats = [math.ceil(r * depth) for *_, r in EFFICIENTNET_B0]
        total, index = sum(repeats), 0
        self.blocks = nn.ModuleList()
        stride, dilation, cin = 2, 1, stem
        for (expansion, kernel, s, channels, _), n in zip(EFFICIENTNET_B0, repeats):
            cout = round_channels(channels, width)
            stage = nn.Sequential()
            for j in range(n):
                block_stride, block_dilation = (s if j == 0 else 1), dilation
                if block_stride > 1 and stride * block_stride > output_stride:
                    dilation, block_stride = dilation * block_stride, 1
                stride *= block_stride
                stage.add_module(str(j), MBConv(cin, cout, expansion, kernel, block_stride, block_dilation,
                                                drop_path_rate * index / total))
                cin, index = cout, index + 1
            self.blocks.append(stage)
        self.out_indices = (0, 1, 2, 4, 6)   # the last stage of each stride
        if num_classes:
            head = round_channels(1280, width)
            self.conv_head = nn.Conv2d(cin, head, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(head, **BN)
            self.classifier = nn.Linear(head, num_classes)

    @staticmethod
    def out_channels(arch: str) -> list[int]:
        width = EFFICIENTNET_SCALES[arch][0]
        return [round_channels(EFFICIENTNET_B0[i][3], width) for i in (0, 1, 2, 4, 6)]

    def forward(self, x):
        x = F.silu(self.bn1(self.conv_stem(x)))
        outs = []
        for i, stage in enumerate(self.blocks):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)


# ------------------------------------------------------------------------------------- UNet decoder
class DecoderBlock(nn.Module):
    """2x nearest upsampling, concatenation with the skip (if any), two conv3x3-BN-ReLU."""

    def __init__(self, cin, skip, cout):
        super().__init__()
        self.conv1 = ConvBN(cin + skip, cout, 3)
        self.conv2 = ConvBN(cout, cout, 3)

    def forward(self, x, skip=None):
        x = F.interpolate(x, scale_factor=2, mode='nearest')
        if skip is not None:
            x = torch.cat([x[..., :skip.shape[-2], :skip.shape[-1]], skip], 1)
        return self.conv2(self.conv1(x))


@MODELS.register_module()
class UNetDecoder(BaseModule):
    """UNet decoder over an encoder's features at strides 2..32 (``in_channels``, shallow to deep),
    as segmentation_models_pytorch builds it: one block per stride, the last one back to the input
    resolution without a skip. Returns the deepest encoder feature, then every block's output
    (strides 16, 8, 4, 2, 1), like mmseg's UNet backbone; the head reads the last one."""

    def __init__(self, in_channels, channels=(256, 128, 64, 32, 16), init_cfg=None):
        super().__init__(init_cfg)
        in_channels = list(in_channels)
        if len(channels) != len(in_channels):
            raise ValueError(f'UNetDecoder: {len(in_channels)} encoder features need as many decoder channels, '
                             f'got {channels}')
        skips = in_channels[-2::-1] + [0]
        ins = [in_channels[-1], *channels[:-1]]
        self.blocks = nn.ModuleList(DecoderBlock(i, s, c) for i, s, c in zip(ins, skips, channels))

    def forward(self, feats):
        x, skips = feats[-1], list(feats[-2::-1]) + [None]
        outs = [x]
        for block, skip in zip(self.blocks, skips):
            x = block(x, skip)
            outs.append(x)
        return outs
