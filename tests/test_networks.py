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


def test_multiclass_and_aux_head():
    net = SegmentationNet('deeplabv3plus', width=8, num_classes=5, aux_head=True)
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
