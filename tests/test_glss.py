import numpy as np
import pytest
import torch
from scipy.signal import convolve2d

from udabench.datasets.base import RowView, SegmentationSet
from udabench.engine import StageRunner
from udabench.methods.base import FitContext
from udabench.methods.glss import GLSS, holdout_split, images_digest, kl_to_standard_normal, mean_image, vae_diagnostics
from udabench.methods.latent_search import latent_search, per_image_loss, prior_draws, ssim
from udabench.methods.networks import SegmentationNet
from udabench.methods.vae import EdgeSkipVAE, sobel_edges
from udabench.runner import compose_config


def test_sobel_edges_of_a_vertical_step():
    img = torch.zeros(1, 1, 5, 5)
    img[..., 3:] = 1.0
    edges = sobel_edges(img)
    assert edges.shape == (1, 2, 5, 5)
    assert edges[0, 1, 2, 2] == 4.0 and edges[0, 1, 2, 0] == 0.0 and edges[0, 0].abs().max() == 0


def test_sobel_pads_by_reflection_as_tf():
    ramp = torch.arange(5.0).repeat(5, 1)[None, None]      # x = column index
    dx = sobel_edges(ramp)[0, 1]
    assert (dx[:, 1:4] == 8.0).all()
    assert (dx[:, 0] == 0).all() and (dx[:, 4] == 0).all()   # reflect: x[-1] = x[1]; replicate would give 4


def test_decoder_layers_follow_the_official_code():
    vae = EdgeSkipVAE(image_size=32, width=16, stem=8, hidden=32)
    dense = [m for m in vae.project if isinstance(m, torch.nn.Linear)]
    assert [(d.in_features, d.out_features) for d in dense] == [(64, 32), (32, 16 * 16)]   # dense -> reshape
    convs = [m for m in vae.upsample if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(convs) == 3 and all(c.kernel_size == (3, 3) and c.stride == (2, 2) for c in convs)
    # raw edges by default, tanh(edges) as an option
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    z = torch.randn(2, 64)
    tanh_vae = EdgeSkipVAE(image_size=32, width=16, stem=8, hidden=32, edge_tanh=True)
    tanh_vae.load_state_dict(vae.state_dict())
    assert not torch.allclose(vae.decode(z, 5 * sobel_edges(x)), tanh_vae.decode(z, 5 * sobel_edges(x)))
    with pytest.raises(KeyError, match='method.vae.init'):
        EdgeSkipVAE(image_size=32, init='xavier')


@pytest.mark.parametrize('init, alive', [('kaiming', True), ('kaiming_small_out', True), ('normal_0.02', False)])
def test_init_decides_whether_z_reaches_the_coarse_image(init, alive):
    torch.manual_seed(0)
    vae = EdgeSkipVAE(image_size=64, width=32, stem=16, hidden=256, init=init)
    coarse = lambda z: vae.upsample(vae.project(z).view(-1, vae.width, 4, 4))  # noqa: E731
    with torch.no_grad():
        gain = (coarse(torch.randn(8, 64)) - coarse(torch.randn(8, 64))).abs().mean().item()
    assert (gain > 1e-3) == alive     # N(0, 0.02): ~5e-6 at the cpu widths


@pytest.mark.parametrize('edge_skip', [True, False])
def test_vae_shapes_and_range(edge_skip):
    vae = EdgeSkipVAE(image_size=32, width=16, stem=8, hidden=32, edge_skip=edge_skip)
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    recon, mu, logvar = vae(x)
    assert recon.shape == x.shape and mu.shape == logvar.shape == (3, 64)
    assert recon.abs().max() <= 1


def test_vae_rejects_sizes_that_do_not_reach_4x4():
    with pytest.raises(ValueError, match='4 \\* 2'):
        EdgeSkipVAE(image_size=48)


def _reference_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. 2004 written out in numpy for 2-D images in [0, 1]: 11x11 Gaussian window (sigma
    1.5), K1 0.01, K2 0.03, data range 1, mean over the valid window positions."""
    g = np.exp(-(np.arange(11) - 5.0) ** 2 / (2 * 1.5 ** 2))
    window = np.outer(g, g) / g.sum() ** 2
    blur = lambda img: convolve2d(img, window, mode='valid')  # noqa: E731
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b, cov = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2, blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    return float(np.mean((2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))))


def _natural_image(size=48, seed=0) -> np.ndarray:
    """A smooth image with edges and texture, in [-1, 1]."""
    from scipy.ndimage import gaussian_filter
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    img = 0.4 * np.sin(6 * xx + 3 * yy) + 0.3 * ((xx - 0.5) ** 2 + (yy - 0.4) ** 2 < 0.08)
    img = img + gaussian_filter(rng.normal(0, 0.4, (size, size)), 1.5)
    return np.clip(img - 0.1, -0.75, 0.75)


def test_ssim_of_two_flat_images_is_the_luminance_term_on_0_1_images():
    # flat -0.1 and +0.1 in [-1, 1] are 0.45 and 0.55 in [0, 1]; with no variance SSIM = l(x, y)
    a, b = torch.full((1, 1, 32, 32), -0.1), torch.full((1, 1, 32, 32), 0.1)
    c1 = 0.01 ** 2
    expected = (2 * 0.45 * 0.55 + c1) / (0.45 ** 2 + 0.55 ** 2 + c1)   # 0.98020
    assert 1 - per_image_loss('ssim', a, b).item() == pytest.approx(expected, abs=2e-4)   # float32 variances
    assert ssim(a.double(), b.double()).item() == pytest.approx(expected, abs=1e-6)


def test_ssim_of_an_image_and_its_brightened_copy_matches_the_numpy_reference():
    img = _natural_image()
    x, brighter = torch.tensor(img, dtype=torch.float32)[None, None], torch.tensor(img + 0.2, dtype=torch.float32)[None, None]
    expected = _reference_ssim((img + 1) / 2, (img + 1.2) / 2)
    assert expected > 0.97            # a shift of 0.1 in [0, 1] barely changes the luminance term
    assert 1 - per_image_loss('ssim', x, brighter).item() == pytest.approx(expected, abs=1e-4)
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-5)


def test_ssim_of_two_natural_images_matches_the_numpy_reference():
    a, b = _natural_image(seed=0), _natural_image(seed=1)
    expected = _reference_ssim((a + 1) / 2, (b + 1) / 2)
    got = ssim(torch.tensor(a, dtype=torch.float32)[None, None], torch.tensor(b, dtype=torch.float32)[None, None])
    assert 0.05 < expected < 0.9 and got.item() == pytest.approx(expected, abs=1e-4)


def test_kl_is_zero_for_the_prior_and_positive_otherwise():
    assert kl_to_standard_normal(torch.zeros(2, 4), torch.zeros(2, 4)).abs().max() == 0
    assert (kl_to_standard_normal(torch.ones(2, 4), torch.zeros(2, 4)) > 0).all()


def _glss(net_name='deeplabv3plus', **kw):
    m = GLSS(vae=dict(width=16, stem=8, hidden=32), vae_train=dict(epochs=1, batch_size=4, optimizer=dict(type='RMSprop', lr=1e-4)),
             latent_search=dict(iterations=3, loss='ssim', lr=0.1, betas=(0.9, 0.99)), beta=dict(deeplabv3plus=3.0, unet=2.0), **kw)
    m.net = SegmentationNet(net_name, width=8).eval()
    for p in m.net.parameters():
        p.requires_grad_(False)
    m.beta = 3.0
    m.vae = EdgeSkipVAE(image_size=32, width=16, stem=8, hidden=32)
    return m


def test_algorithm1_encoder_gets_Lg_decoder_gets_Lh():
    torch.manual_seed(0)
    m = _glss()
    x = torch.rand(2, 1, 32, 32) * 2 - 1

    def grads(objective, params):
        torch.manual_seed(1)
        out = m.vae_objectives(x)[objective]
        return torch.autograd.grad(out, params, allow_unused=True)
    dec, enc = m.vae.decoder_parameters(), m.vae.encoder_parameters()
    # the decoder's gradient of L_g (what one backward pass gives it) equals that of L_h ...
    for a, b in zip(grads('encoder_objective', dec), grads('decoder_objective', dec)):
        assert torch.allclose(a, b, atol=1e-6)
    # ... while the encoder's gradient of L_g differs from L_h's by the KL term
    diff = [(a - b).abs().sum() for a, b in zip(grads('encoder_objective', enc), grads('decoder_objective', enc))]
    assert sum(diff) > 0
    losses = m.vae_objectives(x)
    assert losses['perceptual'] > 0 and losses['kl'] >= 0


def test_perceptual_off_gives_zero_Lp():
    m = _glss(perceptual=False)
    assert m.vae_objectives(torch.rand(2, 1, 32, 32))['perceptual'] == 0


def _lively_vae():
    """A small VAE whose output depends visibly on z (the 0.02 init of an untrained one barely does)."""
    torch.manual_seed(0)
    vae = EdgeSkipVAE(image_size=32, width=16, stem=8, hidden=32).eval()
    for p in vae.parameters():
        torch.nn.init.normal_(p, 0.0, 0.15)
    return vae


def test_latent_search_lowers_the_loss_and_batches_are_independent():
    vae = _lively_vae()
    a, b = torch.rand(1, 1, 32, 32) * 2 - 1, torch.rand(1, 1, 32, 32) * 2 - 1
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    z0 = torch.randn(2, 64, generator=g())
    start = per_image_loss('ssim', torch.cat([a, b]), vae.decode(z0, sobel_edges(torch.cat([a, b]))))
    both = latent_search(vae, torch.cat([a, b]), iterations=15, generator=g())
    assert (both.loss < start).all()
    # image a searched alone from the same z as in the batch ends at the same z
    alone = latent_search(vae, a, iterations=15, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(alone.z[0], both.z[0], atol=1e-5)
    # changing the other image does not change a's search
    other = latent_search(vae, torch.cat([a, torch.zeros_like(b)]), iterations=15, generator=g())
    assert torch.allclose(other.z[0], both.z[0], atol=1e-5)


@pytest.mark.parametrize('loss', ['ssim', 'mse', 'mae'])
def test_latent_search_losses_and_restarts(loss):
    vae = _lively_vae()
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    one = latent_search(vae, x, iterations=4, loss=loss, restarts=1, generator=torch.Generator().manual_seed(0))
    many = latent_search(vae, x, iterations=4, loss=loss, restarts=3, generator=torch.Generator().manual_seed(0),
                         record_every=2)
    assert many.clones.shape == x.shape and sorted(many.snapshots) == [0, 2, 4]
    assert (many.loss <= one.loss + 1e-6).all()      # restart 0 is the single search; best-of-3 is no worse
    with pytest.raises(KeyError, match='ssim, mse or mae'):
        per_image_loss('l3', x, x)


class _Blobs:
    """A handful of tiny images: a bright blob at a different place and size in each."""
    def __init__(self, count=8, size=16):
        yy, xx = np.mgrid[:size, :size] / size
        rng = np.random.default_rng(0)
        self.images = np.stack([
            (0.9 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r ** 2)) + lvl - 0.6)[None]
            for cx, cy, r, lvl in rng.uniform([0.2, 0.2, 0.08, 0.0], [0.8, 0.8, 0.25, 0.4], (count, 4))]).astype(np.float32)


def _train_small_vae(tmp_path, steps=150, **vae):
    images = _Blobs().images
    m = GLSS(vae=dict(latent=8, width=16, stem=8, hidden=32, **vae), latent_search=dict(iterations=3),
             vae_train=dict(epochs=steps, batch_size=8, optimizer=dict(type='RMSprop', lr=2e-4, alpha=0.9, eps=1e-7)),
             beta={}, perceptual=False)
    m.beta, m.heldout_images = 0.0, RowView(images)
    source = SegmentationSet('blobs', images[:, 0], np.zeros(images[:, 0].shape, np.uint8), 'synthetic')
    ctx = FitContext(source=source, stages=StageRunner(tmp_path, checkpoint_every=10 ** 6, progress=False),
                     cache_dir=tmp_path / 'cache', seed=0, net=dict(name='none'))
    vae = m.train_generative_model(ctx, RowView(images))
    return m, vae, ctx


def test_a_small_vae_learns_to_beat_the_mean_image_and_to_use_z(tmp_path):
    # RMSprop lr 2e-4, 150 steps: with the official N(0, 0.02) init z never reaches the image
    m, vae, ctx = _train_small_vae(tmp_path)
    d = m.diagnostics          # measured here on the training images themselves
    assert d['heldout_rec_mse'] < 0.6 * d['heldout_mean_image_mse']
    assert d['z_sensitivity'] > 0.05 and d['active_units'] >= 4
    logs = ctx.stages.history['glss_vae_none/vae']
    assert len(logs) == 150 and logs[-1]['rec'] < 0.5 * logs[0]['rec']
    assert {'rec', 'perceptual', 'beta_perceptual', 'kl', 'kl_scale'} <= set(logs[0])
    dead = _train_small_vae(tmp_path / 'dead', init='normal_0.02')[0].diagnostics
    assert dead['z_sensitivity'] < 0.02


def test_kl_warmup_ramps_the_kl_weight(tmp_path):
    m, vae, ctx = _train_small_vae(tmp_path, steps=20)
    assert [log['kl_scale'] for log in ctx.stages.history['glss_vae_none/vae']] == [1.0] * 20
    m2 = GLSS(vae=dict(latent=8, width=16, stem=8, hidden=32), latent_search={}, beta={}, perceptual=False,
              vae_train=dict(epochs=1, batch_size=8, optimizer=dict(type='RMSprop', lr=1e-3), kl_warmup=0.5))
    assert m2.vae_train['holdout'] == 0.1
    torch.manual_seed(0)
    x = torch.as_tensor(_Blobs().images[:4])
    m2.vae, m2.beta = vae, 0.0
    torch.manual_seed(1)
    half = m2.vae_objectives(x, kl_scale=0.5)
    torch.manual_seed(1)
    full = m2.vae_objectives(x)
    assert torch.allclose(full['encoder_objective'] - half['encoder_objective'], 0.5 * full['kl'], atol=1e-4)


def test_the_vae_cache_key_and_mean_image_read_a_batch_at_a_time_equal_the_whole_sets(monkeypatch):
    """Hashing and averaging in batches must give the whole array's digest and float32 ``mean(0)``
    bit for bit (float32 sums depend on their order: one partial sum per batch would not)."""
    import hashlib
    from udabench.datasets import base
    monkeypatch.setattr(base, 'READ_BATCH', 3)
    images = np.random.default_rng(0).normal(size=(10, 1, 5, 4)).astype(np.float32) * 1e3
    view = RowView(images).take(np.arange(10)[::-1])
    whole = images[::-1]
    assert images_digest(view) == hashlib.sha1(np.ascontiguousarray(whole).tobytes()).hexdigest()
    assert mean_image(view).tobytes() == whole.mean(0).tobytes()


def test_holdout_split_is_seeded_disjoint_and_ten_percent():
    train, held = holdout_split(200, 0.1, seed=3)
    assert len(held) == 20 and len(train) == 180 and not set(train) & set(held)
    assert (holdout_split(200, 0.1, seed=3)[1] == held).all() and not (holdout_split(200, 0.1, seed=4)[1] == held).all()
    assert len(holdout_split(200, 0.0, seed=3)[1]) == 0
    with pytest.raises(ValueError, match='method.vae_train.holdout'):
        holdout_split(10, 1.0, seed=0)


def test_vae_diagnostics_tell_a_vae_that_ignores_z_from_one_that_uses_it():
    images = _Blobs().images
    dead = EdgeSkipVAE(image_size=16, latent=8, width=16, stem=8, hidden=32, init='normal_0.02').eval()
    d = vae_diagnostics(dead, RowView(images), images.mean(0), seed=0, device='cpu')
    assert d['z_sensitivity'] < 1e-3 and d['active_units'] == 0 and d['heldout_images'] == 8
    assert d['rec_to_mean_image'] == pytest.approx(d['heldout_rec_mse'] / d['heldout_mean_image_mse'])
    lively = _lively_vae()
    big = torch.as_tensor(np.random.default_rng(0).uniform(-1, 1, (6, 1, 32, 32)), dtype=torch.float32).numpy()
    assert vae_diagnostics(lively, RowView(big), big.mean(0), seed=0, device='cpu')['z_sensitivity'] > 0.01


def test_each_image_starts_from_its_own_z_whatever_the_batching():
    m = _glss()
    m.vae = _lively_vae()
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    together = m.nearest_clones(x)[0]
    m.images_searched = 0
    apart = torch.cat([m.nearest_clones(x[:2])[0], m.nearest_clones(x[2:])[0]])
    assert torch.allclose(together, apart, atol=1e-5)
    # image i of the second batch does not start from image i of the first batch's z
    z = prior_draws(range(4), 2, 64, seed=0)
    assert z.shape == (8, 64) and not torch.allclose(z[0], z[2]) and not torch.allclose(z[0], z[4])
    assert torch.equal(prior_draws([2, 3], 2, 64, seed=0)[0], z[2])


def test_latent_search_until_convergence():
    vae = _lively_vae()
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    fixed = latent_search(vae, x, iterations=12, generator=g(), record_every=4)
    # infinite patience (never converged) is the fixed-K search
    patient = latent_search(vae, x, iterations=12, generator=g(), patience=10 ** 6, record_every=4)
    assert torch.allclose(fixed.z, patient.z) and (patient.iterations == 12).all() and (fixed.iterations == 12).all()
    # an image whose loss no longer improves by 50 % stops after `patience` iterations
    early = latent_search(vae, x, iterations=12, generator=g(), patience=2, tolerance=0.5, record_every=4)
    assert (early.iterations == 2).all() and sorted(early.snapshots) == [0, 4, 8, 12]
    # ... keeping the z it had when it stopped: that of the fixed search after 2 steps
    two = latent_search(vae, x, iterations=2, generator=g())
    assert torch.allclose(early.z, two.z, atol=1e-6)
    # a tolerance of 0 with patience 1 stops an image at its first non-improving step only
    some = latent_search(vae, x, iterations=40, lr=0.5, generator=g(), patience=1, tolerance=0.0)
    assert (some.iterations >= 1).all() and (some.iterations <= 40).all()
    with pytest.raises(ValueError, match='patience'):
        latent_search(vae, x, iterations=2, patience=0)


def test_glss_without_latent_search_uses_the_encoder_reconstruction():
    m = _glss()
    m.ls_cfg['enabled'] = False
    probs = m.predict(torch.rand(2, 1, 32, 32) * 2 - 1)
    assert probs.shape == (2, 32, 32) and m.ls_seconds == []


def test_glss_end_to_end_smoke_with_ls_trace(tmp_path, smoke_run):
    record, path = smoke_run('glss', target='snv', overrides={'method.latent_search.record_every': 2})
    assert record['latent_search']['seconds_per_image'] > 0
    assert record['latent_search']['iterations_used'] == {'mean': 5.0, 'max': 5}
    # the VAE diagnostics: held-out source images, active units, sensitivity to z, training curves
    vae = record['vae']
    assert vae['holdout'] == 0.1 and vae['heldout_images'] == round(0.1 * record['data']['source']['images'])
    assert vae['heldout_rec_mse'] > 0 and vae['heldout_mean_image_mse'] > 0 and 0 <= vae['active_units'] <= vae['latent'] == 64
    assert vae['z_sensitivity'] >= 0
    summary = record['training']['summary']['glss_vae_deeplabv3plus/vae']
    assert {'rec', 'perceptual', 'beta_perceptual', 'kl'} <= set(summary)
    assert summary['beta_perceptual']['first'] == pytest.approx(3.0 * summary['perceptual']['first'])
    header = (path.parent / record['training']['log']).read_text().splitlines()[0]
    assert 'beta_perceptual' in header
    assert sorted(record['metrics']['trace']) == ['ls_0000', 'ls_0002', 'ls_0004', 'ls_0005']
    # the source network is cached and shared with source_only
    assert len(list((tmp_path / 'work' / 'cache').glob('source_deeplabv3plus/*'))) == 1


def test_vae_on_a_target_fraction_is_cached_per_target(tmp_path, smoke_run):
    for target in ('hand', 'snv'):
        record, _ = smoke_run('glss', target=target, overrides={'method.target_fraction': 0.5})
        assert record['metrics']['target_all']['iou'] >= 0
    # source-only VAEs are shared by every target; a VAE that saw target images is not
    assert len(list((tmp_path / 'work' / 'cache').glob('glss_vae_deeplabv3plus/*'))) == 2


@pytest.mark.parametrize('method, bad', [('glss', -0.2), ('glss', 1.5), ('dada', 0.0), ('adaptsegnet', 2)])
def test_bad_target_fraction_names_the_option(smoke_run, method, bad):
    with pytest.raises(ValueError, match='method.target_fraction must be in'):
        smoke_run(method, target='snv', overrides={'method.target_fraction': bad})


def test_official_code_config_differs_where_the_notes_say():
    cfg = compose_config('glss_official_code', 'deeplabv3plus', 'paper')
    ls = cfg.method.latent_search
    assert (ls.loss, ls.lr, ls.iterations) == ('mse', 0.01, 50)
    assert cfg.method.vae_loss.rec_terms == ('mse', 'mae') and cfg.method.vae_loss.kl_weight == 5.0
