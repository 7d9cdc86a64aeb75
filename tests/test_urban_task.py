"""The urban task (SYNTHIA -> Cityscapes, seed 002 Table 3) through the runner: multi-class losses,
predictions and scores, the twins as registered domains, and what is refused."""
import functools
import json
import math
import os

import numpy as np
import pytest
import torch
from urban_layouts import write_cityscapes, write_synthia

from udabench.datasets.base import SegmentationSet
from udabench.methods.losses import class_probabilities, cross_entropy_loss
from udabench.runner import RunSpec, run, score, validate
from udabench.tasks import TASKS, URBAN_13, URBAN_16, task_of


def test_cross_entropy_ignores_255_and_the_invalid_pixels_by_hand():
    logits = torch.tensor([[[[2.0, 0.0, 5.0]], [[0.0, 1.0, -5.0]]]])      # (1, 2, 1, 3)
    labels = torch.tensor([[[0.0, 1.0, 255.0]]])
    # pixel 0: -log softmax(2, 0)[0]; pixel 1: -log softmax(0, 1)[1]; pixel 2 ignored
    by_hand = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))) / 2
    assert cross_entropy_loss(logits, labels).item() == pytest.approx(by_hand, rel=1e-6)
    valid = torch.tensor([[[1.0, 0.0, 1.0]]])                              # BDL's ignore: pixel 1 leaves too
    assert cross_entropy_loss(logits, labels, valid).item() == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)
    logits.requires_grad_(True)
    nothing = cross_entropy_loss(logits, labels, torch.zeros(1, 1, 3))   # a pseudo-label batch with no pixel kept
    nothing.backward()
    assert nothing.item() == 0.0 and torch.all(logits.grad == 0)         # not NaN (a diverged run)


def test_class_probabilities_sigmoid_for_one_channel_softmax_for_classes():
    one = torch.tensor([[[[0.0, 2.0]]]])
    assert torch.allclose(class_probabilities(one), torch.sigmoid(one)[:, 0])
    many = torch.randn(2, 19, 3, 4)
    probs = class_probabilities(many)
    assert probs.shape == (2, 19, 3, 4) and torch.allclose(probs.sum(1), torch.ones(2, 3, 4))


def test_urban_scores_take_the_argmax_and_the_standard_subsets():
    assert len(URBAN_16) == 16 and set(URBAN_16) - set(URBAN_13) == {3, 4, 5}        # wall, fence, pole
    labels = np.zeros((1, 2, 2), np.uint8)
    labels[0, 1] = 13                                                                  # a car row
    labels[0, 0, 1] = 255
    probs = np.zeros((1, 19, 2, 2), np.float32)
    probs[0, 0] = 0.6                                                                  # road everywhere...
    probs[0, 13, 1, 0] = 0.9                                                           # ...but one car pixel
    out = score(probs, labels, 'urban')
    assert out['iou_road'] == pytest.approx(1 / 2) and out['iou_car'] == pytest.approx(1 / 2)
    assert out['iou_wall'] is None                                                     # in neither: no IoU
    assert out['miou16'] == pytest.approx(1 / 2) and out['miou13'] == pytest.approx(1 / 2)


def test_the_target_names_the_task():
    assert task_of('hand') == 'skin' and task_of('synth_cityscapes') == 'urban'
    assert TASKS['urban']['source'] == 'synthia'
    with pytest.raises(KeyError, match='unknown target'):
        task_of('gta5')


def test_rgb_sets_normalise_channels_first():
    images = np.zeros((2, 4, 6, 3), np.uint8)
    images[..., 2] = 255
    data = SegmentationSet('x', images, np.zeros((2, 4, 6), np.uint8), 'synthetic')
    x = np.asarray(data.normalised_images())
    assert data.channels == 3 and x.shape == (2, 3, 4, 6) and (x[:, 2] == 1).all() and (x[:, 0] == -1).all()
    with pytest.raises(ValueError, match='differ'):
        SegmentationSet('x', images, np.zeros((2, 4, 5), np.uint8), 'synthetic')


def _spec(tmp_path, method, **kwargs):
    return RunSpec(method=method, target='cityscapes', profile='smoke', data_root=str(tmp_path / 'data'),
                   results_dir=str(tmp_path / 'runs'), work_dir=str(tmp_path / 'work'),
                   synthetic_cache=str(tmp_path / 'synth'), progress=False, **kwargs)


def _strict_json(path):
    def refuse(name):
        raise ValueError(f'{path} holds {name}')
    return json.loads(path.read_text(), parse_constant=refuse)


def test_source_only_on_the_urban_twins_end_to_end(tmp_path):
    path = run(_spec(tmp_path, 'source_only'))
    record = _strict_json(path)                              # no NaN anywhere in the file
    assert record['task'] == 'urban' and record['data']['source']['name'] == 'synth_synthia'
    assert record['data']['target']['name'] == 'synth_cityscapes'
    for split in ('target_test', 'target_all'):
        metrics = record['metrics'][split]
        assert 0 <= metrics['miou13'] <= 1 and 0 <= metrics['miou16'] <= 1
        assert metrics['iou_terrain'] in (None, 0.0)         # never labelled in the twins: null or 0, never NaN
    # The net's recipe says focal (binary); the urban task trains with cross-entropy over 19 ids.
    assert record['config']['seg_recipe']['loss'] == 'focal' and record['seg_loss'] == 'cross_entropy'


def test_urban_methods_adapt_on_the_training_split_only_skin_on_the_whole_target(tmp_path):
    """The held-out urban split (Cityscapes val) must never reach training, labelled or not; skin
    adapts on the whole target as seed 002 (its Table 2 is transductive)."""
    from udabench.runner import prepare
    p = prepare(_spec(tmp_path, 'advent'))
    train_idx = np.setdiff1d(np.arange(len(p.target)), p.test_idx)
    assert np.array_equal(p.ctx.target_images, p.target.subset(train_idx).normalised_images())
    skin = prepare(RunSpec(method='advent', target='hand', profile='smoke', data_root=str(tmp_path / 'data'),
                           results_dir=str(tmp_path / 'runs'), work_dir=str(tmp_path / 'work'),
                           synthetic_cache=str(tmp_path / 'synth'), progress=False))
    assert np.array_equal(skin.ctx.target_images, skin.target.normalised_images())


def test_methods_not_built_for_the_urban_task_are_refused(tmp_path):
    with pytest.raises(ValueError, match='--method glss_gan is built for the skin task, not urban'):
        validate(_spec(tmp_path, 'glss_gan'))


def _real_urban_folders(data, synthia=5):
    """SYNTHIA (5 images, road over sky, depth 999) and Cityscapes (4 train, 3 val) in their layouts."""
    ids = np.full((8, 16), 1, np.uint16)                     # SYNTHIA sky
    ids[4:] = 3                                              # road
    for i in range(synthia):
        write_synthia(data / 'synthia', ids, name=f'{i:07d}', red=40 * i % 256, depth=999)
    city = np.where(ids == 3, 7, 23).astype(np.uint8)        # Cityscapes labelIds: road 7, sky 23
    for split, n in (('train', 4), ('val', 3)):
        for i in range(n):
            write_cityscapes(data / 'cityscapes', split, f'{i:06d}_000019', city, value=30 * i)


def test_the_real_urban_sets_are_prepared_once_memory_mapped_and_tested_on_val(tmp_path):
    from udabench.runner import prepare
    _real_urban_folders(tmp_path / 'data')
    p = prepare(_spec(tmp_path, 'advent'))
    source, target = p.source, p.target
    assert (source.data_source, target.data_source) == ('real', 'real') and p.data_source == 'real'
    assert isinstance(target.images, np.memmap) and target.images.shape == (7, 32, 64, 3)   # smoke: 32 x 64
    assert np.array_equal(p.test_idx, [4, 5, 6])             # val is the test split; train the first four
    assert len(p.ctx.target_images) == 4                     # adaptation never sees val
    assert set(np.unique(source.masks)) == {0, 10} and set(np.unique(target.masks)) == {0, 10}   # road, sky
    assert np.allclose(1 / source.depth, 65536 / 1000)       # DADA's inverse-depth target
    prepared = sorted((tmp_path / 'synth' / 'prepared').iterdir())
    assert len(prepared) == 2 and not any(d.name.endswith('.partial') for d in prepared)
    stamp = [d.stat().st_mtime_ns for d in prepared]
    prepare(_spec(tmp_path, 'advent'))                       # read back, not made again
    assert [d.stat().st_mtime_ns for d in sorted((tmp_path / 'synth' / 'prepared').iterdir())] == stamp
    os.utime(tmp_path / 'data' / 'synthia' / 'RGB' / '0000000.png', ns=(1, 1))   # a changed file re-prepares
    prepare(_spec(tmp_path, 'advent'))
    assert len(list((tmp_path / 'synth' / 'prepared').iterdir())) == 3


def test_two_processes_preparing_one_set_at_once_do_not_write_over_each_other(tmp_path, monkeypatch):
    """Another run finishes the same prepared copy while this one is writing its own: this one's is
    dropped and the finished copy read, with no partial folder left behind."""
    from udabench.datasets import urban
    _real_urban_folders(tmp_path / 'data')
    files, cache = urban.synthia_files(tmp_path / 'data' / 'synthia'), tmp_path / 'prepared'
    read, raced = urban.read_example, []

    def read_while_another_finishes(files_, i, size):
        if not raced:
            raced.append(True)
            monkeypatch.setattr(urban.os, 'getpid', lambda: 999999)     # the other process
            urban.prepare(files_, size, cache)
            monkeypatch.undo()
            monkeypatch.setattr(urban, 'read_example', read_while_another_finishes)
        return read(files_, i, size)
    monkeypatch.setattr(urban, 'read_example', read_while_another_finishes)
    arrays = urban.prepare(files, (8, 16), cache)
    assert raced and arrays['images'].shape == (5, 8, 16, 3)
    assert [d.name.split('_')[-1] for d in cache.iterdir()] == [urban.prepared_key(files, (8, 16))]


def test_source_only_runs_on_the_real_urban_layouts(tmp_path):
    _real_urban_folders(tmp_path / 'data')
    record = _strict_json(run(_spec(tmp_path, 'source_only')))
    assert record['data_source'] == 'real' and record['data']['target']['test_images'] == 3
    assert record['data']['target']['name'] == 'cityscapes' and 'of val' in record['data']['target']['detail']
    assert 0 <= record['metrics']['target_test']['miou16'] <= 1


@pytest.mark.parametrize('name', ['bdl', 'glss', 'depth_distribution'])
def test_a_run_on_the_real_urban_sets_reads_them_a_batch_at_a_time(tmp_path, monkeypatch, name):
    """Never a whole real set as floats (``RowView.__array__``), never more rows at once than a
    training batch (smoke: at most 8) or, predicting, translating and hashing, ``READ_BATCH`` (here
    2; GLSS's prediction and Fréchet batches set to 2 as well, its VAE's to 8)."""
    from udabench.datasets import base
    _real_urban_folders(tmp_path / 'data', synthia=12)
    reads, read = [], base.RowView.__getitem__

    def counted(view, rows):
        block = read(view, rows)
        reads.append((isinstance(rows, slice), len(block)))
        return block
    monkeypatch.setattr(base, 'READ_BATCH', 2)
    monkeypatch.setattr(base.RowView, '__getitem__', counted)
    monkeypatch.setattr(base.RowView, '__array__', lambda *_, **__: pytest.fail('a whole set was read at once'))
    overrides = {'method.predict_batch_size': 2, 'method.vae_train.batch_size': 8} if name == 'glss' else {}
    from udabench.methods import glss                        # its Fréchet distance reads 100 images a batch
    monkeypatch.setattr(glss, 'source_frechet_distance', functools.partial(glss.source_frechet_distance, batch_size=2))
    record = _strict_json(run(_spec(tmp_path, name, overrides=overrides)))
    assert record['status'] == 'ok' and record['data']['source']['images'] == 12
    assert max(n for sliced, n in reads if sliced) == 2 and max(n for sliced, n in reads if not sliced) <= 8


def test_a_bad_real_urban_layout_is_named(tmp_path):
    (tmp_path / 'data' / 'synthia').mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r'synthia/RGB does not exist; expected SYNTHIA-RAND-CITYSCAPES'):
        run(_spec(tmp_path, 'source_only'))


CLASSES = 5


def _multiclass_method(tmp_path, name):
    """``name`` built on a tiny RGB context with CLASSES classes (255 ignored), as on the urban task."""
    from udabench.engine import StageRunner
    from udabench.methods.base import FitContext
    from udabench.registry import METHODS, lookup
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (4, 32, 32, 3)).astype(np.uint8)
    labels = rng.integers(0, CLASSES, (4, 32, 32)).astype(np.uint8)
    labels[:, :2] = 255
    source = SegmentationSet('synth_synthia', images, labels, 'synthetic', depth=rng.random((4, 32, 32)) + 1.0)
    ctx = FitContext(source=source, stages=StageRunner(tmp_path, progress=False), cache_dir=tmp_path,
                     net=dict(name='deeplabv3plus', width=8, in_channels=3, num_classes=CLASSES),
                     seg_recipe=dict(loss='cross_entropy'), target_images=source.normalised_images(), progress=False)
    method = lookup(METHODS, name)(warm_start=False, bn='frozen', disc_width=8, stop_iters=2)
    method.build(ctx)
    method.eval()
    return method, torch.as_tensor(source.normalised_images()[:2]), source


def _discriminator_inputs(tmp_path, name):
    """(outputs, discriminator inputs) of ``name`` on two tiny multi-class images."""
    method, x, _ = _multiclass_method(tmp_path, name)
    with torch.no_grad():
        out = method.outputs(x)
        return out, method.discriminator_inputs(out)


@pytest.mark.parametrize('name', ['adaptsegnet', 'clan'])
def test_output_space_discriminators_see_the_softmax_over_the_classes(tmp_path, name):
    out, inputs = _discriminator_inputs(tmp_path, name)
    for level, value in inputs.items():
        assert value.shape[1] == CLASSES and torch.allclose(value, torch.softmax(out[level], 1))


@pytest.mark.parametrize('name', ['advent', 'dada'])
def test_entropy_discriminators_see_self_information_over_the_classes(tmp_path, name):
    out, inputs = _discriminator_inputs(tmp_path, name)
    p = torch.softmax(out['main'], 1)
    information = -p * torch.log2(p) / math.log2(CLASSES)                 # normalised by log2 C, C = 5
    expected = information * out['depth'] if name == 'dada' else information
    assert inputs['main'].shape[1] == CLASSES and torch.allclose(inputs['main'], expected, atol=1e-6)


@pytest.mark.parametrize('name', ['advent', 'bdl', 'dise'])
def test_adaptation_trains_on_the_urban_twins_end_to_end(tmp_path, name):
    path = run(_spec(tmp_path, name))
    record = _strict_json(path)
    assert record['task'] == 'urban' and 0 <= record['metrics']['target_test']['miou16'] <= 1
    stages = record['training']['summary']
    assert any(v['iterations'] > 0 for k, v in stages.items() if k.startswith('adaptation'))


def test_the_vae_takes_rgb_images_of_twice_the_width():
    from udabench.methods.vae import EdgeSkipVAE, bottleneck
    assert bottleneck(64) == ((4, 4), 4) and bottleneck((64, 128)) == ((4, 8), 4)
    vae = EdgeSkipVAE(image_size=(16, 32), channels=3, latent=8, width=8, stem=4, hidden=16)
    x = torch.rand(2, 3, 16, 32) * 2 - 1
    recon, mu, _ = vae(x)
    assert recon.shape == x.shape and mu.shape == (2, 8)
    with pytest.raises(ValueError, match='H = 4 \\* 2\\^k by a multiple of 2\\^k, got 16 x 18'):
        EdgeSkipVAE(image_size=(16, 18))


def test_glss_segments_the_urban_twins_through_rgb_clones(tmp_path):
    record = _strict_json(run(_spec(tmp_path, 'glss')))
    assert record['task'] == 'urban' and 0 <= record['metrics']['target_test']['miou16'] <= 1
    assert record['vae']['latent'] == 64 and 'heldout_rec_mse' in record['vae']
