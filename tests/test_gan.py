"""GAN vs VAE (seed 000 §2.5): the Fréchet distance, the DCGAN's losses and training, ``glss_gan``
end to end, and the supplement's Table 2 from hand-made records."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from udabench.engine import StageRunner
from udabench.evaluation import frechet_distance, frechet_distance_from_moments
from udabench.methods.gan import (DCGANDiscriminator, DCGANGenerator, discriminator_loss, encoder_features, gan_step,
                                  generator_loss, train_gan)
from udabench.methods.glss_gan import GLSSGAN
from udabench.methods.networks import SegmentationNet
from udabench.runner import compose_config
from udabench.tables import MISSING, gan_vs_vae_table


# ------------------------------------------------------------------------------ Fréchet distance
def test_frechet_distance_of_two_known_gaussians():
    # diagonal covariances: ||mu1 - mu2||^2 + sum (sqrt(a) - sqrt(b))^2 = (1 + 4) + (1 - 2)^2 + (2 - 3)^2 = 7
    assert frechet_distance_from_moments([0, 0], np.diag([1.0, 4.0]), [1, 2], np.diag([4.0, 9.0])) == pytest.approx(7)
    # I vs a rotated diag(4, 1): Tr(I) + Tr(S) - 2 Tr(S^(1/2)) = 2 + 5 - 2 * 3 = 1, whatever the rotation
    c, s = math.cos(0.3), math.sin(0.3)
    rot = np.array([[c, -s], [s, c]])
    assert frechet_distance_from_moments([0, 0], np.eye(2), [0, 0], rot @ np.diag([4.0, 1.0]) @ rot.T) == pytest.approx(1)


def test_frechet_distance_from_samples():
    rng = np.random.default_rng(0)
    a = rng.normal([0, 0], [1, 2], size=(40000, 2))
    b = rng.normal([1, 2], [2, 3], size=(40000, 2))
    assert frechet_distance(a, b) == pytest.approx(7, abs=0.2)
    assert abs(frechet_distance(a, a)) < 1e-6
    with pytest.raises(ValueError, match='equal D'):
        frechet_distance(a, b[:, :1])


# ---------------------------------------------------------------------------------- DCGAN losses
def test_discriminator_loss_labels_real_one_and_fake_zero():
    right, wrong = torch.full((4,), 6.0), torch.full((4,), -6.0)
    assert discriminator_loss(right, wrong) < 0.01            # confident and correct: ~0
    assert discriminator_loss(wrong, right) > 11              # confident and wrong: ~2 * 6
    assert discriminator_loss(torch.zeros(4), torch.zeros(4)) == pytest.approx(2 * math.log(2))


def test_generator_loss_is_non_saturating():
    fooled, caught = torch.full((4,), 6.0), torch.full((4,), -6.0)
    assert generator_loss(fooled) < 0.01 and generator_loss(caught) > 5.9
    z = torch.full((4,), -6.0, requires_grad=True)            # -log D(G(z)): a strong gradient where D wins
    generator_loss(z).backward()
    assert (z.grad < -0.2).all()


def _nets(size=16, width=8):
    torch.manual_seed(0)
    return DCGANGenerator(size, 1, latent=8, width=width), DCGANDiscriminator(size, 1, width=width)


@pytest.mark.parametrize('size', [8, 32, 64])
def test_dcgan_shapes(size):
    g, d = DCGANGenerator(size, 1, latent=8, width=4), DCGANDiscriminator(size, 1, width=4)
    x = g.decode(torch.randn(3, 8), edges=None)
    assert x.shape == (3, 1, size, size) and x.abs().max() <= 1 and d(x).shape == (3,)
    with pytest.raises(ValueError, match='4 \\* 2\\^k'):
        DCGANGenerator(48)


def test_gan_step_moves_each_player_its_own_way():
    """With G frozen, D's steps separate real from fake; then with D frozen, G's steps raise D(G(z))."""
    real = torch.rand(16, 1, 16, 16) * 0.5 + 0.5
    g, d = _nets()
    frozen = lambda net: torch.optim.SGD(net.parameters(), lr=0.0)  # noqa: E731
    g_opt, d_opt = frozen(g), torch.optim.Adam(d.parameters(), 2e-3)
    for it in range(10):
        log = gan_step(g, d, g_opt, d_opt, real, torch.Generator().manual_seed(it))
    assert log['d_real'] > 0.8 and log['d_fake'] < 0.2
    fooled_before = log['d_fake']
    g_opt, d_opt = torch.optim.Adam(g.parameters(), 2e-3), frozen(d)
    for it in range(10):
        log = gan_step(g, d, g_opt, d_opt, real, torch.Generator().manual_seed(it))
    assert log['d_fake'] > fooled_before + 0.2


def _blobs(n, size=16, seed=0):
    """Images of a bright square (random position) on a dark background, in [-1, 1]."""
    rng = np.random.default_rng(seed)
    x = np.full((n, 1, size, size), -0.8, np.float32)
    for img, (i, j) in zip(x, rng.integers(0, size - 6, size=(n, 2))):
        img[:, i:i + 6, j:j + 6] = 0.8
    return x


def _pooled(x):
    return F.avg_pool2d(torch.as_tensor(x), 4).flatten(1).numpy()


def test_generator_learns_the_data(tmp_path):
    """A few hundred DCGAN steps move the generated images' statistics to the data's."""
    data = _blobs(256)
    train = dict(epochs=25, batch_size=32, optimizer=dict(type='Adam', lr=2e-3, betas=(0.5, 0.999)), standing_batches=4)
    stages = StageRunner(tmp_path, checkpoint_every=1000, progress=False)
    torch.manual_seed(0)
    untrained = DCGANGenerator(16, 1, latent=8, width=8).eval()
    z = torch.randn(256, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        fd_before = frechet_distance(_pooled(untrained(z)), _pooled(data))
    g = train_gan(data, dict(latent=8, width=8), train, stages, seed=0, device='cpu')
    with torch.no_grad():
        samples = g.decode(z, None)
    fd_after = frechet_distance(_pooled(samples), _pooled(data))
    assert not g.training and len(stages.history['gan']) == 200
    assert fd_after < 0.25 * fd_before, (fd_before, fd_after)
    assert abs(samples.mean() - data.mean()) < 0.15
    # the game did not collapse to a perfect discriminator
    assert np.mean([log['d_fake'] for log in stages.history['gan'][-20:]]) > 0.05


# ------------------------------------------------------------------------------------- glss_gan
def test_encoder_features_are_pooled_backbone_maps():
    for name in ('deeplabv3plus', 'unet'):
        net = SegmentationNet(name, width=8).eval()
        with torch.no_grad():
            feats = encoder_features(net, torch.rand(3, 1, 32, 32))
        assert feats.shape[0] == 3 and feats.ndim == 2


def test_glss_gan_config_shares_glss_latent_search():
    for profile in ('smoke', 'cpu', 'paper'):
        gan, vae = (compose_config(m, 'deeplabv3plus', profile).method for m in ('glss_gan', 'glss'))
        assert gan.latent_search == vae.latent_search and gan.type == 'glss_gan'
        assert 'vae' not in gan and gan.gan.latent == vae.vae.latent
    assert compose_config('glss_gan', 'unet', 'smoke').method.latent_search.iterations == 5


def test_glss_gan_needs_a_prior_search():
    cfg = compose_config('glss_gan', 'deeplabv3plus', 'smoke').method.to_dict()
    cfg.pop('type')
    with pytest.raises(ValueError, match='method.latent_search'):
        GLSSGAN(**{**cfg, 'latent_search': {**cfg['latent_search'], 'enabled': False}})


def test_glss_gan_and_glss_end_to_end_write_the_frechet_distance(tmp_path, smoke_run):
    gan, path = smoke_run('glss_gan', target='snv')
    assert gan['metrics']['target_all']['iou'] >= 0 and gan['latent_search']['seconds_per_image'] > 0
    assert gan['frechet_distance']['value'] > 0 and 'edges' not in gan['frechet_distance']['sampling']
    assert gan['training']['summary'].keys() >= {'glss_gan/gan'}
    assert 'd_loss' in path.with_name(path.stem + '.log.csv').read_text()
    vae, _ = smoke_run('glss', target='snv')
    assert vae['frechet_distance']['value'] > 0 and 'edges' in vae['frechet_distance']['sampling']
    assert vae['frechet_distance']['features'] == gan['frechet_distance']['features']
    # the GAN does not depend on the segmentation network: one cached model for both
    smoke_run('glss_gan', target='hand', net='unet')
    assert len(list((tmp_path / 'work' / 'cache').glob('glss_gan/*'))) == 1


# ------------------------------------------------------------------------- supplement Table 2
def _record(method, target, iou, fd, seed=0, net='deeplabv3plus', **kw):
    return {**dict(method=method, target=target, net=net, seed=seed, study='main', tag='', overrides={},
                   config={'method': {}}, metrics={'target_all': {'iou': iou, 'dice': iou}},
                   frechet_distance={'value': fd}), **kw}


def test_gan_vs_vae_table_from_records():
    frame = gan_vs_vae_table([
        _record('glss_gan', 'synth_snv', 0.30, 40.0), _record('glss_gan', 'synth_hand', 0.20, 40.0),
        _record('glss_gan', 'synth_hand', 0.40, 60.0, seed=1),
        _record('glss', 'synth_snv', 0.50, 50.0),
        _record('glss', 'synth_snv', 0.90, 10.0, tag='r4'),                 # a tagged variant is not Table 2's
        _record('glss', 'synth_hand', 0.70, 50.0, net='unet')])            # no glss_gan run on UNet: no block
    assert list(frame.index) == [('DeepLabv3+', 'GAN (glss_gan)'), ('DeepLabv3+', 'VAE (glss)'),
                                 ('DeepLabv3+', 'GAN − VAE (paired, 95 % t)')]
    gan, vae, delta = frame.iloc[0], frame.iloc[1], frame.iloc[2]
    assert delta['SNV IoU'] == '-0.200 (n=1)' and delta['Hand Gesture IoU'] == MISSING   # seed 0 of SNV only
    assert gan['SNV IoU'] == '0.300 (n=1)' and gan['Hand Gesture IoU'] == f'0.300 ± {0.1 * math.sqrt(2):.3f} (n=2)'
    assert gan['Fréchet distance to source'] == f'50.000 ± {10 * math.sqrt(2):.3f} (n=2)'   # one value per seed
    assert vae['SNV IoU'] == '0.500 (n=1)' and vae['Hand Gesture IoU'] == MISSING
    assert vae['Fréchet distance to source'] == '50.000 (n=1)'
