import numpy as np
import torch

from udabench.methods.adaptation import pseudo_labels
from udabench.methods.translation import PatchDiscriminator, ResnetGenerator, lsgan_loss


def test_generator_and_discriminator_shapes():
    gen = ResnetGenerator(1, width=8, downs=2, blocks=2)
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    y = gen(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    assert PatchDiscriminator(1, width=8)(x).shape == (2, 1, 2, 2)
    assert lsgan_loss(torch.ones(3), True) == 0 and lsgan_loss(torch.zeros(3), False) == 0


def test_cycle_reconstruction_improves_on_a_tiny_set():
    torch.manual_seed(0)
    g1, g2 = ResnetGenerator(1, 8, 2, 1), ResnetGenerator(1, 8, 2, 1)
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    opt = torch.optim.Adam([*g1.parameters(), *g2.parameters()], lr=2e-3, betas=(0.5, 0.999))
    errors = []
    for _ in range(40):
        loss = (g2(g1(x)) - x).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        errors.append(loss.item())
    assert errors[-1] < 0.6 * errors[0]


def test_bdl_pseudo_labels_as_the_originals_ssl_script():
    probs = np.array([[0.85, 0.8, 0.6, 0.4, 0.1, 0.02, 0.5]])
    labels = pseudo_labels(probs, cap=0.9)
    # skin (p > 0.5) confidences sorted 0.6, 0.8, 0.85 -> threshold at index round(3/2) = 2: 0.85
    # (np.median would give 0.8); background 0.5 (p = 0.5 exactly goes there, argmax's first index),
    # 0.6, 0.9, 0.98 -> index 2: 0.9 (cap 0.9): keep 0.9 and 0.98
    assert labels.tolist() == [[1, -1, -1, -1, 0, 0, -1]]


def test_bdl_pseudo_labels_per_class_on_class_probabilities():
    # 3 classes, 6 pixels: argmax 0, 0, 0, 1, 1, 2 with confidences 0.5, 0.7, 0.9, 0.6, 0.8, 0.4
    probs = np.array([[0.5, 0.3, 0.2], [0.7, 0.2, 0.1], [0.9, 0.05, 0.05],
                      [0.2, 0.6, 0.2], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]]).T[None, :, None, :]   # (1, 3, 1, 6)
    labels = pseudo_labels(probs, cap=0.9)
    # class 0: sorted 0.5, 0.7, 0.9 -> index round(1.5) = 2: 0.9; class 1: 0.6, 0.8 -> index 1: 0.8;
    # class 2: 0.4 -> index round(0.5) = 0: 0.4 (kept)
    assert labels.shape == (1, 1, 6) and labels.tolist() == [[[-1, -1, 0, -1, 1, 2]]]


def test_image_pool_returns_stored_fakes_and_checkpoints():
    from udabench.methods.translation import ImagePool
    pool = ImagePool(2)
    first = torch.zeros(2, 1, 4, 4)
    assert torch.equal(pool.query(first, np.random.default_rng(0)), first)     # filling: the new images
    out = torch.cat([pool.query(torch.ones(1, 1, 4, 4), np.random.default_rng(s)) for s in range(8)])
    assert (out == 0).any() and (out == 1).any()     # sometimes a stored image, sometimes the new one
    copy = ImagePool(2)
    copy.load_state_dict(pool.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(copy.images, pool.images))


def test_bdl_end_to_end_smoke(tmp_path, smoke_run):
    record, _ = smoke_run('bdl')
    assert 0 <= record['metrics']['target_all']['iou'] <= 1
    stages = sorted(p.name for p in (tmp_path / 'work' / 'smoke' / 'synthetic' / 'bdl' / 'hand_deeplabv3plus_seed0'
                                     / record['stage_keys']['adaptation_0']).iterdir())
    assert stages == ['adaptation_0.pth', 'adaptation_1.pth', 'translation_0.pth', 'translation_1.pth']


def test_bdl_translation_trains_on_the_target_fraction_only(smoke_run, monkeypatch):
    import udabench.methods.bdl as bdl
    seen = []

    def recording(count, batch, it, seed):
        seen.append(count)
        return real(count, batch, it, seed)
    real = bdl.batch_indices
    monkeypatch.setattr(bdl, 'batch_indices', recording)
    record, _ = smoke_run('bdl', target='snv', overrides={'method.target_fraction': 0.5})
    source, target = record['data']['source']['images'], record['data']['target']['images']
    assert set(seen) == {source, target // 2}     # the CycleGAN sees half of the target, not all of it


def test_dise_parts_shapes():
    from udabench.methods.dise import StructureTextureDecoder, TextureEncoder
    code = TextureEncoder(4)(torch.rand(2, 1, 32, 32))
    assert code.shape == (2, 16, 1, 1)
    image = StructureTextureDecoder(24, 16, 4, stride=8)(torch.rand(2, 24, 4, 4), code)
    assert image.shape == (2, 1, 32, 32) and image.abs().max() <= 1


def test_dise_end_to_end_smoke(tmp_path, smoke_run):
    record, _ = smoke_run('dise', target='snv', net='unet')
    assert 0 <= record['metrics']['target_all']['iou'] <= 1
    ckpt = torch.load(tmp_path / 'work' / 'smoke' / 'synthetic' / 'dise' / 'snv_unet_seed0' / record['stage_keys']['adaptation']
                      / 'adaptation.pth', weights_only=True)
    assert {'translation', 'image_disc'} <= set(ckpt['state'])
