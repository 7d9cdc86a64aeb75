"""Bad inputs (issue 12): each case, one per line, must raise a named error or log a warning
before (or instead of) a silently wrong result."""
import json
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from udabench.datasets.real import load_folder
from udabench.engine import RunLocked, StageRunner, TrainingDiverged, locked
from udabench.runner import RunSpec, compose_config, grid_points, parse_overrides, prepare, run, validate


def plain(root, n=4, mask_suffix='.png', mask=None, size=16):
    """A plain-layout folder of ``n`` random images and binary masks; ``mask`` overrides the mask array."""
    (root / 'images').mkdir(parents=True, exist_ok=True)
    (root / 'masks').mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(root / 'images' / f'{i}.png')
        m = (rng.random((size, size)) > 0.5).astype(np.uint8) * 255 if mask is None else mask
        Image.fromarray(m).save(root / 'masks' / f'{i}{mask_suffix}')
    return root


def spec(tmp, **kwargs):
    base = dict(method='source_only', target='hand', profile='smoke', data_root=str(tmp / 'no-real-data'),
                results_dir=str(tmp / 'runs'), work_dir=str(tmp / 'work'), synthetic_cache=str(tmp / 'synth'),
                progress=False)
    return RunSpec(**{**base, **kwargs})


def cfg(**overrides):
    return lambda tmp: compose_config('advent', 'unet', 'smoke', overrides)


def setting(text):
    return lambda tmp: compose_config('advent', 'unet', 'smoke', parse_overrides([text]))


def a_file(tmp):
    (tmp / 'f').write_text('x')
    return str(tmp / 'f')


class Evil:
    def __reduce__(self):
        return (os.system, ('echo pwned',))


def saved(tmp, obj, name='w.pth'):
    torch.save(obj, tmp / name)
    return str(tmp / name)


def with_file(tmp, name, writer):
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    writer(path)
    return path


def checkpoint_of(tmp, obj=None, raw=None):
    """A stage checkpoint holding ``obj`` (pickled with torch.save) or the bytes ``raw``."""
    path = tmp / 'stage.pth'
    if raw is not None:
        path.write_bytes(raw)
    else:
        torch.save(obj, path)
    model = torch.nn.Linear(1, 1)
    return lambda: StageRunner(tmp, progress=False).run('stage', lambda it: {'loss': 0.0}, 2, {'m': model})


def nan_stage(tmp):
    StageRunner(tmp, progress=False).run('stage', lambda it: {'loss': float('nan') if it == 1 else 1.0}, 3, {})


def dup_stem(tmp):
    root = plain(tmp / 'd')
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(root / 'images' / '0.jpg')
    return load_folder('x', root, 8, 'nir')


def nested(tmp):
    root = plain(tmp / 'd')
    (root / 'images' / 'old').mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(root / 'images' / 'old' / '9.png')
    return load_folder('x', root, 8, 'nir')


def dup_mask_stem(tmp):
    root = plain(tmp / 'd')
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(root / 'masks' / '0.bmp')
    return load_folder('x', root, 8, 'nir')


def empty(tmp):
    (tmp / 'd' / 'images').mkdir(parents=True)
    (tmp / 'd' / 'masks').mkdir()
    return load_folder('x', tmp / 'd', 8, 'nir')


def no_mask(tmp):
    root = plain(tmp / 'd')
    (root / 'masks' / '1.png').unlink()
    return load_folder('x', root, 8, 'nir')


def tiny_target(tmp):
    plain(tmp / 'real' / 'compaq', n=4)
    plain(tmp / 'real' / 'hand', n=2)
    return prepare(spec(tmp, data_root=str(tmp / 'real')))


def truncated_result(tmp):
    out = run(spec(tmp, net='unet'))
    out.write_text(out.read_text()[:40])
    assert json.loads(run(spec(tmp, net='unet')).read_text())['metrics']     # re-run, now whole


def locked_run(tmp):
    p = prepare(spec(tmp))
    with locked(p.work.with_name(p.run_key + '.lock'), wait=False, what='x'):
        run(spec(tmp))


# id, make(tmp) -> a call, expected error class or 'warning', text the message must hold
CASES = [
    ('set_misspelt_section', setting('seg_recipie.lr=1e-3'), KeyError, "no key 'seg_recipie'"),
    ('set_misspelt_profile_key', setting('profile.seg_epoch=3'), KeyError, "'profile' has no key 'seg_epoch'"),
    ('set_misspelt_method_key', setting('method.lamda_adv=1.0'), KeyError, "'method' has no key 'lamda_adv'"),
    ('set_misspelt_optimizer_arg', setting('method.optimizer.momentom=0.9'), KeyError, 'momentom'),
    ('set_value_not_a_number', setting('method.stop_iters=abc'), ValueError, 'stop_iters.*expected an integer'),
    ('set_iterations_negative', setting('method.stop_iters=-5'), ValueError, 'method.stop_iters = -5'),
    ('set_iterations_zero', setting('method.stop_iters=0'), ValueError, 'method.stop_iters = 0'),
    ('set_iterations_float', setting('method.stop_iters=2.5'), ValueError, 'expected an integer'),
    ('set_batch_size_zero', setting('profile.seg_batch_size=0'), ValueError, 'seg_batch_size'),
    ('set_precision_unknown', setting('profile.precision=fp16'), ValueError, "profile.precision = 'fp16'.*'bf16'"),
    ('set_deterministic_not_bool', setting('profile.deterministic=1'), ValueError, 'deterministic.*True or False'),
    ('set_image_size_odd', setting('profile.image_size=33'), ValueError, '4\\*2\\^k'),
    ('set_count_zero', setting('profile.counts.hand=0'), ValueError, 'profile.counts.hand'),
    ('set_fraction_above_one', lambda tmp: validate(spec(tmp, method='advent', overrides={'method.target_fraction': 1.5})), ValueError, 'method.target_fraction must be in'),
    ('set_lr_negative', setting('method.optimizer.lr=-1.0'), ValueError, 'method.optimizer.lr'),
    ('set_bool_as_int', setting('method.warm_start=1'), ValueError, 'True or False'),
    ('set_without_equals', lambda tmp: parse_overrides(['oops']), ValueError, 'key=value'),
    ('profile_path', lambda tmp: compose_config('source_only', 'unet', '../profiles/cpu'), KeyError, 'unknown profile'),
    ('net_path', lambda tmp: compose_config('source_only', '../nets/unet', 'smoke'), KeyError, 'unknown net'),
    ('method_path', lambda tmp: compose_config('../methods/glss', 'unet', 'smoke'), KeyError, 'unknown method'),
    ('unknown_method', lambda tmp: compose_config('nope', 'unet', 'smoke'), KeyError, 'source_only'),
    ('study_path', lambda tmp: validate(spec(tmp, study='../../x')), ValueError, '--study'),
    ('tag_path', lambda tmp: validate(spec(tmp, tag='a/b')), ValueError, '--tag'),
    ('negative_seed', lambda tmp: validate(spec(tmp, seed=-1)), ValueError, '--seed'),
    ('grid_without_grid', lambda tmp: grid_points(compose_config('source_only', 'unet', 'smoke')), ValueError, 'no grid'),
    ('results_dir_is_a_file', lambda tmp: validate(spec(tmp, results_dir=a_file(tmp))), NotADirectoryError, '--results-dir'),
    ('work_dir_is_a_file', lambda tmp: validate(spec(tmp, work_dir=a_file(tmp))), NotADirectoryError, '--work-dir'),
    ('pretrained_missing', lambda tmp: validate(spec(tmp, overrides={'net.pretrained': str(tmp / 'no.pth')})), FileNotFoundError, 'no.pth'),
    ('pretrained_runs_code', lambda tmp: validate(spec(tmp, overrides={'net.pretrained': saved(tmp, Evil())})), ValueError, 'not a plain state dict'),
    ('pretrained_not_tensors', lambda tmp: validate(spec(tmp, overrides={'net.pretrained': saved(tmp, {'a': 1})})), ValueError, 'not a plain state dict'),
    ('mask_jpeg', lambda tmp: load_folder('x', plain(tmp / 'd', mask_suffix='.jpg'), 8, 'nir'), ValueError, 'lossless'),
    ('mask_colour', lambda tmp: load_folder('x', plain(tmp / 'd', mask=np.dstack([np.full((16, 16), 255, np.uint8), np.zeros((16, 16), np.uint8), np.zeros((16, 16), np.uint8)])), 8, 'nir'), ValueError, 'one value per pixel'),
    ('mask_not_binary', lambda tmp: load_folder('x', plain(tmp / 'd', mask=np.full((16, 16), 7, np.uint8)), 8, 'nir'), 'warning', 'other than 0 and 255'),
    ('duplicate_image_stems', dup_stem, ValueError, r"stem '0': .*images/0\.jpg and .*images/0\.png"),
    ('duplicate_mask_stems', dup_mask_stem, ValueError, r"masks/0\.bmp and .*masks/0\.png"),
    ('nested_image_folder', nested, ValueError, r'old/9\.png is in a sub-folder'),
    ('empty_image_folder', empty, FileNotFoundError, r'no images in .*d/images; expected one of'),
    ('missing_mask', no_mask, FileNotFoundError, r'no mask for .*1\.png'),
    ('target_too_small_to_test', tiny_target, ValueError, 'has 2 images: too few'),
    ('checkpoint_truncated', lambda tmp: checkpoint_of(tmp, raw=b'PK\x03\x04 broken')(), RuntimeError, r'stage\.pth cannot be read'),
    ('checkpoint_runs_code', lambda tmp: checkpoint_of(tmp, obj={'iteration': 1, 'state': Evil()})(), RuntimeError, r'stage\.pth cannot be read'),
    ('loss_not_finite', nan_stage, TrainingDiverged, "stage 'stage' at step 1"),
    ('result_truncated', truncated_result, 'warning', 'unreadable or has no metrics'),
    ('run_locked', locked_run, RunLocked, 'another process'),
]


@pytest.mark.parametrize('name, make, expected, match', CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_named(tmp_path, caplog, name, make, expected, match):
    if expected == 'warning':
        with caplog.at_level('WARNING', logger='udabench'):
            make(tmp_path)
        assert any(__import__('re').search(match, r.getMessage()) for r in caplog.records), caplog.text
    else:
        with pytest.raises(expected, match=match):
            make(tmp_path)


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    root = plain(tmp_path / 'd', n=1)
    Image.fromarray(np.full((16, 16), 128 * 257, np.uint16)).save(root / 'images' / '0.png')
    assert Image.open(root / 'images' / '0.png').mode.startswith('I')
    assert (load_folder('x', root, 8, 'nir').images == 128).all()
