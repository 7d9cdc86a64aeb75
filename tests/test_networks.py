import pytest
import torch

from udabench.methods.networks import NETWORKS, SegmentationNet


@pytest.mark.parametrize('name', NETWORKS)
def test_network_outputs_logits_at_input_resolution_and_learns(name):
    torch.manual_seed(0)
    net = SegmentationNet(name, width=8, depth=18)
    x = torch.randn(2, 1, 32, 32)
    out = net(x)
    assert out.shape == (2, 1, 32, 32)
    out.mean().backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert all(g is not None for g in grads[:3]) and any(g.abs().sum() > 0 for g in grads if g is not None)


@pytest.mark.parametrize('name', NETWORKS)
def test_multiclass_and_aux_head(name):   # FPN's aux head once read a backbone-sized input from its neck
    net = SegmentationNet(name, width=8, num_classes=5, aux_head=True)
    main, aux = net(torch.randn(2, 1, 32, 32), with_aux=True)
    assert main.shape == aux.shape == (2, 5, 32, 32)


@pytest.mark.parametrize('name,channels', [('deeplabv3plus', 32 + 12), ('unet', 64)])
def test_perceptual_layers(name, channels):
    net = SegmentationNet(name, width=8).eval()
    feats = net.perceptual_features(torch.randn(1, 1, 32, 32))
    assert feats.shape[1] == channels


def test_pretrained_backbone_weights_load_and_bad_files_fail(tmp_path):
    source = SegmentationNet('deeplabv3plus', width=8)
    path = tmp_path / 'backbone.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in source.model.backbone.state_dict().items()}}, path)
    loaded = SegmentationNet('deeplabv3plus', width=8, pretrained=str(path))
    for (k, a), b in zip(source.model.backbone.state_dict().items(), loaded.model.backbone.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(FileNotFoundError, match='no checkpoint file'):
        SegmentationNet('unet', width=8, pretrained=str(tmp_path / 'missing.pth'))
    torch.save({'unrelated': torch.zeros(3)}, tmp_path / 'other.pth')
    with pytest.raises(ValueError, match='matches the backbone'):
        SegmentationNet('unet', width=8, pretrained=str(tmp_path / 'other.pth'))


# ------------------------------------------------------------------ the paper's backbones (issue 13)
from udabench.methods.backbones import EfficientNet, UNetDecoder, XceptionAligned  # noqa: E402


def _params(module):
    return sum(p.numel() for p in module.parameters())


def test_xception65_features_at_every_stride():
    feats = XceptionAligned(in_channels=1).eval()(torch.randn(1, 1, 64, 64))
    assert [tuple(f.shape[1:]) for f in feats] == [(256, 16, 16), (728, 8, 8), (728, 4, 4), (2048, 4, 4)]
    deep = XceptionAligned(in_channels=1, output_stride=32, middle_blocks=1).eval()(torch.randn(1, 1, 64, 64))[-1]
    assert deep.shape[-1] == 2


@pytest.mark.parametrize('arch,channels', [('b0', [16, 24, 40, 112, 320]), ('b4', [24, 32, 56, 160, 448])])
def test_efficientnet_features_at_every_stride(arch, channels):
    assert EfficientNet.out_channels(arch) == channels
    if arch == 'b0':
        feats = EfficientNet(arch).eval()(torch.randn(1, 1, 64, 64))
        assert [tuple(f.shape[1:]) for f in feats] == [(c, 64 // s, 64 // s) for c, s in zip(channels, (2, 4, 8, 16, 32))]
        dilated = EfficientNet(arch, output_stride=8).eval()(torch.randn(1, 1, 64, 64))
        assert [f.shape[-1] for f in dilated] == [32, 16, 8, 8, 8]


@pytest.mark.parametrize('build,published,tolerance', [
    # timm's port of DeepLab's TF ImageNet checkpoint: 39.92M (the DeepLab paper gives no count)
    (lambda: XceptionAligned(in_channels=3, num_classes=1000), 39.92e6, 0.005),
    # Tan & Le 2019, Table 2: B0 5.3M, B4 19M (timm: 5.29M, 19.34M)
    (lambda: EfficientNet('b0', in_channels=3, num_classes=1000), 5.3e6, 0.01),
    (lambda: EfficientNet('b4', in_channels=3, num_classes=1000), 19.0e6, 0.025)])
def test_backbone_parameter_counts_match_the_published_figures(build, published, tolerance):
    assert abs(_params(build()) - published) <= tolerance * published


def test_unet_decoder_goes_back_to_input_resolution():
    chans = EfficientNet.out_channels('b0')
    feats = [torch.randn(1, c, 64 // s, 64 // s) for c, s in zip(chans, (2, 4, 8, 16, 32))]
    outs = UNetDecoder(chans, channels=(32, 16, 8, 8, 4))(feats)
    assert [tuple(o.shape[1:]) for o in outs] == [(320, 2, 2), (32, 4, 4), (16, 8, 8), (8, 16, 16), (8, 32, 32), (4, 64, 64)]


@pytest.mark.parametrize('name', NETWORKS)
def test_paper_networks_with_aux_head_learn(name):
    torch.manual_seed(0)
    net = SegmentationNet(name, width=16, backbone='paper', efficientnet='b0', aux_head=True)
    main, aux = net(torch.randn(2, 1, 32, 32), with_aux=True)
    assert main.shape == aux.shape == (2, 1, 32, 32)
    (main.mean() + aux.mean()).backward()
    first = next(net.model.backbone.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0


@pytest.mark.parametrize('name,channels,size', [('deeplabv3plus', 64 + 12, 16), ('unet', 64, 4)])
def test_perceptual_layers_of_the_paper_networks(name, channels, size):
    net = SegmentationNet(name, width=16, backbone='paper', efficientnet='b0').eval()
    feats = net.perceptual_features(torch.randn(1, 1, 64, 64))
    assert feats.shape[1:] == (channels, size, size)


def test_paper_unet_head_reads_one_map():
    # DADA fuses depth into the one map the head reads; CLAN captures conv_seg's input
    head = SegmentationNet('unet', width=16, backbone='paper', efficientnet='b0').model.decode_head
    assert isinstance(head.in_index, int) and head.conv_seg.in_channels == 4


@pytest.mark.parametrize('name,keys', [
    ('unet', ['conv_stem.weight', 'bn1.running_mean', 'blocks.0.0.conv_dw.weight', 'blocks.0.0.se.conv_reduce.weight',
              'blocks.1.0.conv_pw.weight', 'blocks.1.0.bn3.weight', 'blocks.6.0.conv_pwl.weight']),
    ('deeplabv3plus', ['stem.0.conv.weight', 'stem.1.bn.bias', 'blocks.0.shortcut.conv.weight',
                       'blocks.3.stack.conv2.conv_pw.weight', 'blocks.20.stack.conv3.bn_pw.running_var'])])
def test_timm_layout_state_dict_loads_and_first_conv_is_summed(tmp_path, name, keys):
    net = SegmentationNet(name, width=16, backbone='paper', efficientnet='b0')
    own = net.model.backbone.state_dict()
    torch.manual_seed(1)
    state = {k: torch.rand(own[k].shape[0], 3, *own[k].shape[2:]) if own[k].dim() == 4 and own[k].shape[1] == 1
             else torch.rand_like(own[k].float()) for k in keys}
    state['classifier.weight'] = torch.zeros(1000, 1280)   # the ImageNet classifier is ignored
    torch.save(state, tmp_path / 'timm.pth')
    loaded = SegmentationNet(name, width=16, backbone='paper', efficientnet='b0', pretrained=str(tmp_path / 'timm.pth'))
    got = loaded.model.backbone.state_dict()
    for k in keys:
        want = state[k].sum(1, keepdim=True) if state[k].shape != own[k].shape else state[k]
        assert torch.allclose(got[k].float(), want), k


def test_unknown_backbone_is_a_clear_error():
    with pytest.raises(ValueError, match='net.backbone'):
        SegmentationNet('unet', backbone='xception')
