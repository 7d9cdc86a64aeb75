import pytest
import torch

from udabench.methods.glss import GLSS, kl_to_standard_normal
from udabench.methods.latent_search import latent_search, per_image_loss
from udabench.methods.networks import SegmentationNet
from udabench.methods.vae import EdgeSkipVAE, sobel_edges
from udabench.runner import compose_config


def test_sobel_edges_of_a_vertical_step():
    img = torch.zeros(1, 1, 5, 5)
    img[..., 3:] = 1.0
    edges = sobel_edges(img)
    assert edges.shape == (1, 2, 5, 5)
    assert edges[0, 1, 2, 2] == 4.0 and edges[0, 1, 2, 0] == 0.0 and edges[0, 0].abs().max() == 0


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


def test_glss_without_latent_search_uses_the_encoder_reconstruction():
    m = _glss()
    m.ls_cfg['enabled'] = False
    probs = m.predict(torch.rand(2, 1, 32, 32) * 2 - 1)
    assert probs.shape == (2, 32, 32) and m.ls_seconds == []


def test_glss_end_to_end_smoke_with_ls_trace(tmp_path, smoke_run):
    record, _ = smoke_run('glss', target='snv', overrides={'method.latent_search.record_every': 2})
    assert record['latent_search']['seconds_per_image'] > 0
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
