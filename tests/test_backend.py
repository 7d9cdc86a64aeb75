"""GPU readiness, checked on the CPU: the backend flags every result records, the bf16 autocast
option (forward passes in bf16, losses and SSIM in float32), one host transfer per step's log, and
data moved to the device once per stage."""
import math

import numpy as np
import pytest
import torch

from udabench.engine import autocast, configure_backend, host_floats
from udabench.methods.base import BatchReader, to_tensor
from udabench.methods.latent_search import latent_search
from udabench.methods.vae import EdgeSkipVAE


@pytest.fixture
def conv_output_dtypes():
    """The dtypes of every Conv2d/ConvTranspose2d/Linear output while the fixture is active."""
    seen = set()

    def hook(module, inputs, output):
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
            seen.add(output.dtype)
    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    yield seen
    handle.remove()


def test_every_result_records_the_backend_flags(smoke_run):
    record, _ = smoke_run('source_only')
    backend = record['backend']
    assert backend['precision'] == 'float32' and backend['deterministic'] is True and backend['device'] == 'cpu'
    for key in ('cudnn_enabled', 'cudnn_benchmark', 'cudnn_deterministic', 'cudnn_allow_tf32', 'cuda_matmul_allow_tf32',
                'float32_matmul_precision', 'deterministic_algorithms', 'mkldnn_enabled'):
        assert key in backend, key


def test_configure_backend_sets_cudnn_and_tf32_on_cuda_only(monkeypatch):
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    for obj, name in ((cudnn, 'benchmark'), (cudnn, 'deterministic'), (cudnn, 'allow_tf32'), (matmul, 'allow_tf32')):
        monkeypatch.setattr(obj, name, getattr(obj, name))          # restored after the test
    monkeypatch.setattr(torch.cuda, 'get_device_name', lambda device=None: 'a GPU')
    monkeypatch.setattr(cudnn, 'version', lambda: 90000)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        cudnn.allow_tf32 = True                                       # PyTorch's default for convolutions
        cpu = configure_backend('cpu', 'float32', True)
        assert cpu['cudnn_allow_tf32'] is True and 'gpu' not in cpu   # the CPU changes nothing
        exact = configure_backend('cuda', 'float32', True)
        assert (exact['cudnn_deterministic'], exact['cudnn_benchmark'], exact['deterministic_algorithms']) == (True, False, True)
        assert (exact['cudnn_allow_tf32'], exact['cuda_matmul_allow_tf32'], exact['gpu']) == (False, False, 'a GPU')
        fast = configure_backend('cuda', 'tf32', False)
        assert (fast['cudnn_deterministic'], fast['cudnn_benchmark'], fast['deterministic_algorithms']) == (False, True, False)
        assert fast['cudnn_allow_tf32'] and fast['cuda_matmul_allow_tf32']
        with pytest.raises(ValueError, match='profile.precision'):
            configure_backend('cuda', 'fp16', True)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)


def test_autocast_is_bf16_under_bf16_only(conv_output_dtypes):
    conv = torch.nn.Conv2d(1, 2, 3)
    x = torch.rand(1, 1, 8, 8)
    with autocast('cpu', 'float32'):
        assert torch.equal(conv(x), conv(x)) and conv(x).dtype == torch.float32
    with autocast('cpu', 'bf16'):
        assert conv(x).dtype == torch.bfloat16


@pytest.mark.parametrize('method', ['source_only', 'advent', 'glss'])
def test_a_bf16_run_trains_its_forward_passes_in_bf16_and_ends_finite(smoke_run, conv_output_dtypes, method):
    record, _ = smoke_run(method, overrides={'profile.precision': 'bf16'})
    assert torch.bfloat16 in conv_output_dtypes
    assert record['status'] == 'ok' and record['backend']['precision'] == 'bf16'
    assert math.isfinite(record['metrics']['target_all']['iou'])
    for stage, summary in record['training']['summary'].items():
        for key, value in summary.items():
            if isinstance(value, dict):
                assert math.isfinite(value['last']), (stage, key)


def test_float32_runs_never_see_bf16(smoke_run, conv_output_dtypes):
    smoke_run('advent')
    assert conv_output_dtypes == {torch.float32}


def test_the_latent_search_decodes_in_bf16_but_scores_in_float32(conv_output_dtypes):
    torch.manual_seed(0)
    vae = EdgeSkipVAE(image_size=16, width=8, stem=4, hidden=16, latent=4).eval()
    x = torch.rand(3, 1, 16, 16) * 2 - 1
    result = latent_search(vae, x, iterations=3, generator=torch.Generator().manual_seed(0),
                           autocast=lambda: autocast('cpu', 'bf16'))
    assert torch.bfloat16 in conv_output_dtypes
    assert result.loss.dtype == torch.float32 and result.clones.dtype == torch.float32
    assert torch.isfinite(result.loss).all()


def test_host_floats_equal_item_for_every_dtype():
    log = {'a': torch.tensor(0.1), 'b': torch.tensor(0.1, dtype=torch.float64), 'c': torch.tensor(0.3, dtype=torch.bfloat16),
           'd': 0.25, 'e': torch.tensor(3.0) * 2}
    out = host_floats(log)
    assert out == {k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in log.items()}
    assert all(type(v) is float for v in out.values())


def test_batches_are_a_per_step_copy_of_the_rows():
    """Same values and strides as ``to_tensor(array[indices])`` (an image array made as x[:, None]
    gets stride 1 on its channel axis, which oneDNN runs channels-last: other strides change results)."""
    images = (np.random.default_rng(0).random((10, 4, 4)).astype(np.float32) * 2 - 1)[:, None]
    masks = (images > 0).astype(np.float32)
    data = BatchReader({'x': images, 'y': masks}, 'cpu')
    idx = np.array([7, 2, 2, 9])
    batch = data.batch(idx)
    assert len(data) == 10
    for key, array in (('x', images), ('y', masks)):
        old = to_tensor(array[idx], 'cpu')
        assert torch.equal(batch[key], old) and batch[key].stride() == old.stride()
