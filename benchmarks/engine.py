"""Training plumbing shared by every method: seeded batches, poly LR, resumable stages.

A *stage* (e.g. "segmentation", "vae", "adaptation") is a loop of ``step(iteration)`` calls whose
modules and optimisers are checkpointed atomically every ``checkpoint_every`` iterations; an
interrupted stage resumes from its last checkpoint. Batches depend only on (seed, iteration), so a
resumed stage sees the batches the uninterrupted one would have seen.

Exactness: a fresh stage seeds torch, numpy and Python's ``random`` from (seed, stage name), and
checkpoints carry those RNG states, so a stage killed anywhere and resumed ends bit-identical to an
uninterrupted one (same thread count), and the RNG state after a finished stage is the same whether
it trained now or was loaded (a cached network does not shift its caller's draws).
Checkpoints hold only tensors and plain containers and are read with ``weights_only=True``.
Devices: a step may log 0-dim tensors; they reach the host in one transfer per step (one sync on a
GPU). ``configure_backend`` sets and records the cuDNN/TF32 flags, ``autocast`` the bf16 option.
Failure: every step's logged values, and every module's tensors before each checkpoint, are checked
for non-finite values; a diverged stage raises ``TrainingDiverged`` and writes no checkpoint.
A work directory is keyed by everything that determines its stages (``fingerprint``,
``code_version``); ``locked`` gives one process at a time a work directory.
"""
from __future__ import annotations

import ast
import ctypes
import errno
import fcntl
import functools
import hashlib
import io
import json
import logging
import math
import random
import tokenize
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .results import atomic_write

logger = logging.getLogger('udabench')


def batch_indices(n: int, batch_size: int, iteration: int, seed: int) -> np.ndarray:
    """Indices of batch ``iteration`` of seeded epoch-wise shuffles of ``range(n)``."""
    if n == 0:
        raise ValueError('cannot draw batches from an empty dataset')
    per_epoch = max(n // batch_size, 1)
    epoch, k = divmod(iteration, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(n)
    out = order[k * batch_size:(k + 1) * batch_size]
    return out if len(out) == min(batch_size, n) else order[:batch_size]


def iterations_for(epochs: float, n: int, batch_size: int) -> int:
    return max(1, int(round(epochs * max(n // batch_size, 1))))


def build_optimizer(params, cfg: dict) -> torch.optim.Optimizer:
    """``dict(type='RMSprop'|'SGD'|'Adam', **kwargs)`` -> the torch optimiser."""
    cfg = dict(cfg)
    name = cfg.pop('type')
    if not hasattr(torch.optim, name):
        raise KeyError(f'unknown optimizer type {name!r} (a torch.optim class name is expected)')
    return getattr(torch.optim, name)(params, **cfg)


def atomic_torch_save(obj, path: Path) -> None:
    atomic_write(path, lambda fh: torch.save(obj, fh))


def fingerprint(*parts) -> str:
    """A short, stable hash of JSON-able ``parts`` (dict keys sorted)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def statements(node: ast.AST):
    """``node`` and every statement under it, nested ones included (expressions are not entered:
    what ``code_text`` and ``imported_modules`` look for are statements, and an order of magnitude
    fewer nodes than ``ast.walk`` visits)."""
    yield node
    for field in ('body', 'orelse', 'finalbody', 'handlers', 'cases'):
        for child in getattr(node, field, ()):
            yield from statements(child)


@functools.lru_cache(maxsize=None)
def code_text(source: str) -> str:
    """``source`` (Python) without what cannot change what it computes: docstrings (a string that is
    the first statement of a module, class or function), comments, trailing spaces and blank lines.
    Cut from the text, not re-printed from the syntax tree, so that it reads the same under every
    Python version (checked for this repository's files under 3.10-3.13); indentation and every
    other token stay. Cached by the text: every method's ``code_version`` reads the shared files."""
    lines = source.split('\n')

    def column(row, byte_offset):          # ast counts UTF-8 bytes, tokenize characters
        return len(lines[row - 1].encode()[:byte_offset].decode())
    cuts = []
    for node in statements(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                cuts.append(((first.lineno, column(first.lineno, first.col_offset)),
                             (first.end_lineno, column(first.end_lineno, first.end_col_offset))))
    cuts += [(token.start, token.end) for token in tokenize.generate_tokens(io.StringIO(source).readline)
             if token.type == tokenize.COMMENT]
    for (row, col), (end_row, end_col) in sorted(cuts, reverse=True):     # from the end: positions stay valid
        lines[row - 1:end_row] = [lines[row - 1][:col] + lines[end_row - 1][end_col:]]
    return '\n'.join(line.rstrip() for line in lines if line.strip())


def hash_sources(folders, exclude=()) -> str:
    """Hash of every ``.py`` file (path relative to its folder, and ``code_text``) under ``folders``,
    but those whose relative path (``folder/...``) starts with one of ``exclude``."""
    digest = hashlib.sha256()
    for folder in map(Path, folders):
        for path in sorted(folder.rglob('*.py')):
            if f'{folder.name}/{path.relative_to(folder).as_posix()}'.startswith(tuple(exclude)):
                continue
            digest.update(f'{folder.name}/{path.relative_to(folder).as_posix()}\0'.encode())
            digest.update(code_text(path.read_text()).encode() + b'\0')
    return digest.hexdigest()[:16]


def _package_dir(name: str) -> Path:
    import importlib
    return Path(importlib.import_module(name).__file__).resolve().parent


def imported_modules(path: Path, package: str) -> set[str]:
    """The modules of ``package`` that the file at ``path`` (a module of ``package`` or not) imports
    anywhere in its text, by absolute (``package.x``) or, inside ``package``, relative name (``.x``)."""
    inside = path.resolve().parent == _package_dir(package)
    names = set()
    for node in statements(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name.removeprefix(package + '.') for a in node.names if a.name.startswith(package + '.')}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ''
            if node.level == 1 and inside:
                parent = module
            elif node.level == 0 and (module == package or module.startswith(package + '.')):
                parent = module.removeprefix(package).removeprefix('.')
            else:
                continue
            names |= {parent} if parent else {a.name for a in node.names}   # `from . import x`: x is a module
    return {n.split('.')[0] for n in names if (_package_dir(package) / f'{n.split(".")[0]}.py').exists()}


def _method_closure(roots: set[str]) -> list[Path]:
    """The files of ``udabench.methods`` modules ``roots`` and every such module they import,
    directly or not."""
    folder, seen, todo = _package_dir('udabench.methods'), set(), set(roots)
    while todo:
        name = todo.pop()
        seen.add(name)
        todo |= imported_modules(folder / f'{name}.py', 'udabench.methods') - seen
    return [folder / f'{name}.py' for name in sorted(seen)]


@functools.lru_cache(maxsize=None)
def code_version(module: str) -> str:
    """Hash of the code a run of ``module`` (a ``udabench.methods`` module, e.g. ``'udabench.methods.bdl'``)
    executes: all of ``benchmarks/`` but ``NOT_RUN_CODE``, all of ``datasets/``, and of ``methods/``
    the module with every method module it imports, directly or not, and those the shared code
    imports. ``methods/__init__.py`` only imports the modules to register them and is left out, so
    editing (or adding) one method re-makes its own runs and stages, not every other method's. Each
    file counts by its ``code_text``: editing a docstring or a comment re-makes nothing."""
    shared = [_package_dir('udabench.engine'), _package_dir('udabench.datasets')]
    digest = hashlib.sha256(hash_sources(shared, exclude=NOT_RUN_CODE).encode())
    roots = {module.removeprefix('udabench.methods.')} | {
        name for shared_dir in shared for path in sorted(shared_dir.rglob('*.py'))
        if not f'{shared_dir.name}/{path.relative_to(shared_dir).as_posix()}'.startswith(NOT_RUN_CODE)
        for name in imported_modules(path, 'udabench.methods')}
    for path in _method_closure(roots):
        digest.update(f'methods/{path.name}\0'.encode() + code_text(path.read_text()).encode() + b'\0')
    return digest.hexdigest()[:16]


def method_code_version(method_type: str) -> str:
    """``code_version`` of the module that defines the registered method ``method_type``."""
    from .registry import METHODS, lookup
    return code_version(lookup(METHODS, method_type).__module__)


# Rendering tables, expanding plans and launching sweeps cannot change a run's numbers. Config files
# reach a run only through its composed config, which is in its run key, its stage keys and its
# result file (the sweep and the tables compare it): a config edit re-makes exactly the runs whose
# config it changes, not every run.
NOT_RUN_CODE = ('benchmarks/tables.py', 'benchmarks/sweep.py', 'benchmarks/plans/', 'benchmarks/configs/')


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory instead of handing large blocks back to the kernel.

    By default blocks above a (dynamic) threshold are ``mmap``-ed and unmapped when freed, so a
    loop that allocates the same large tensors every step (the latent search over a batch of 250,
    the VAE step) page-faults them in again each time: in ``tools/bench_speed.py`` half of the
    latent search's CPU time was the kernel's. Raising ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD``
    to 1 GiB makes the heap reuse them. Numbers are unchanged (only where memory comes from).
    Returns False where glibc is not the C library (nothing is changed there)."""
    try:
        libc = ctypes.CDLL('libc.so.6')
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3          # glibc's mallopt parameter numbers
    return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))


#: ``profile.precision``: float32 everywhere; TF32 matmuls and convolutions on CUDA; bf16 autocast of
#: the forward passes (losses, SSIM and BatchNorm statistics stay float32).
PRECISIONS = ('float32', 'tf32', 'bf16')


def configure_backend(device: str, precision: str = 'float32', deterministic: bool = True) -> dict:
    """Set the flags a run's numbers depend on and return them as its result file records them.

    On CUDA: ``deterministic`` picks cuDNN's deterministic algorithms without autotuning
    (``cudnn.deterministic``, no ``cudnn.benchmark``) and ``torch.use_deterministic_algorithms``
    (warning, not failing, on ops that have no deterministic kernel: bilinear upsampling's backward);
    ``precision`` 'tf32' allows TF32 in matmuls and convolutions, every other precision forbids it
    (PyTorch allows it in convolutions by default). On the CPU nothing changes: the flags are read.
    """
    if precision not in PRECISIONS:
        raise ValueError(f'profile.precision must be one of {PRECISIONS}, got {precision!r}')
    if device.startswith('cuda'):
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == 'tf32'
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
    flags = dict(precision=precision, deterministic=deterministic, device=device,
                 cudnn_enabled=torch.backends.cudnn.enabled, cudnn_benchmark=torch.backends.cudnn.benchmark,
                 cudnn_deterministic=torch.backends.cudnn.deterministic,
                 cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                 cuda_matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32,
                 float32_matmul_precision=torch.get_float32_matmul_precision(),
                 deterministic_algorithms=torch.are_deterministic_algorithms_enabled(),
                 mkldnn_enabled=torch.backends.mkldnn.enabled)
    if device.startswith('cuda'):
        flags.update(cudnn_version=torch.backends.cudnn.version(), gpu=torch.cuda.get_device_name(device))
    return flags


def autocast(device: str, precision: str):
    """The context for forward passes: bf16 autocast when ``precision`` is 'bf16', else none."""
    if precision != 'bf16':
        return nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def host_floats(log: dict) -> dict:
    """A step's log with every tensor value as a Python float, all of them in one device-to-host
    transfer (``.item()`` per value would wait for the device once per value)."""
    tensors = [k for k, v in log.items() if isinstance(v, torch.Tensor)]
    if not tensors:
        return log
    values = torch.stack([log[k].detach().reshape(()).double() for k in tensors]).tolist()
    return {**log, **dict(zip(tensors, values))}


class TrainingDiverged(RuntimeError):
    """A stage produced a non-finite loss or tensor: ``stage``, ``step`` and ``value`` say where."""

    def __init__(self, stage: str, step: int, value: str):
        self.stage, self.step, self.value = stage, step, value
        super().__init__(f'training diverged in stage {stage!r} at step {step}: {value} is not finite')


class RunLocked(RuntimeError):
    """Another process holds the lock of a run."""


@contextmanager
def locked(path: Path, wait: bool, what: str):
    """Hold an exclusive ``fcntl.flock`` on ``path`` (created if needed). ``wait=False`` raises
    ``RunLocked`` when another process holds it; ``wait=True`` blocks until it is free."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'a') as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            if not wait:
                raise RunLocked(f'{what} is being run by another process (lock {path} is held); '
                                'wait for it to finish') from None
            logger.info('waiting for another process to finish %s (lock %s)', what, path)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's global RNG and Python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2 ** 32)
    random.seed(seed)


def rng_state() -> dict:
    """The global RNG states as tensors and plain containers (loadable with ``weights_only=True``)."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {'torch': torch.get_rng_state(),
             'numpy': {'keys': torch.from_numpy(keys.astype(np.int64)), 'pos': int(pos),
                       'has_gauss': int(has_gauss), 'gauss': float(gauss)},
             'python': [version, list(internal), gauss_next]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state['torch'])
    npy = state['numpy']
    np.random.set_state(('MT19937', npy['keys'].numpy().astype(np.uint32), npy['pos'], npy['has_gauss'], npy['gauss']))
    version, internal, gauss_next = state['python']
    random.setstate((version, tuple(internal), gauss_next))
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def load_checkpoint(path: Path) -> dict:
    """A checkpoint read with ``weights_only=True``; an unreadable one is an error naming it."""
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:   # truncated, corrupt or holding non-tensor objects
        raise RuntimeError(f'checkpoint {path} cannot be read ({type(err).__name__}: {err}); '
                           'delete it to recompute that stage') from err


def first_non_finite(state: dict) -> str | None:
    """``'<name>.<tensor>'`` of the first non-finite floating tensor of the modules in ``state``."""
    for name, obj in state.items():
        if isinstance(obj, torch.nn.Module):
            for key, tensor in obj.state_dict().items():
                if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                    return f'{name}.{key}'
    return None


class StageRunner:
    """Runs named, checkpointed training stages inside one work directory."""

    def __init__(self, work_dir: Path, checkpoint_every: int = 200, progress: bool = True,
                 history: dict | None = None, prefix: str = '', seed: int = 0, keys: dict | None = None,
                 shared: bool = False):
        self.work_dir = Path(work_dir)
        self.checkpoint_every = checkpoint_every
        self.progress = progress
        #: stage name (with ``prefix``) -> every step's log, from iteration 0, also across resumes and
        #: cache hits (the logs are checkpointed); runners made by ``child`` share it.
        self.history = {} if history is None else history
        self.prefix = prefix
        self.seed = seed
        #: stage name (with ``prefix``) -> key of the work directory it ran in (its folder name).
        self.keys = {} if keys is None else keys
        #: a cache shared by runs: each stage waits for the folder's lock (``<work_dir>/.lock``).
        self.shared = shared

    def child(self, work_dir: Path, prefix: str) -> 'StageRunner':
        """A runner in a shared cache folder (named by its key) whose stage logs and keys land in this
        runner's ``history`` and ``keys``."""
        return StageRunner(work_dir, self.checkpoint_every, self.progress, self.history, prefix, self.seed,
                           self.keys, shared=True)

    def checkpoint(self, stage: str) -> Path:
        return self.work_dir / f'{stage}.pth'

    def run(self, stage: str, step, num_iters: int, state: dict) -> list[dict]:
        """Call ``step(it) -> dict of floats`` for it in [resume point, num_iters); return every
        iteration's log (those before the resume point come from the checkpoint).

        ``state`` maps names to modules/optimisers saved in the checkpoint.
        """
        if not self.shared:
            return self._run(stage, step, num_iters, state)
        with locked(self.work_dir / '.lock', wait=True,
                    what=f'cached stage {self.prefix + stage} ({self.work_dir})'):
            return self._run(stage, step, num_iters, state)

    def _run(self, stage: str, step, num_iters: int, state: dict) -> list[dict]:
        name = self.prefix + stage
        path = self.checkpoint(stage)
        start, logs = 0, []
        if path.exists():
            saved = load_checkpoint(path)
            for key, obj in state.items():
                obj.load_state_dict(saved['state'][key])
            start, logs = saved['iteration'], list(saved.get('logs', []))
            set_rng_state(saved['rng'])
            if start < num_iters:
                logger.info('resuming stage %s at iteration %d of %d', stage, start, num_iters)
        else:
            seed_everything(int(fingerprint(self.seed, name), 16) % 2 ** 31)
        self.history[name] = logs
        self.keys[name] = self.work_dir.name
        bar = tqdm(range(start, num_iters), initial=start, total=num_iters, desc=stage,
                   disable=not self.progress or start >= num_iters, leave=False, dynamic_ncols=True)
        for it in bar:
            log = host_floats(step(it))
            bad = next((k for k, v in log.items() if not math.isfinite(v)), None)
            if bad is not None:
                raise TrainingDiverged(name, it, f'logged value {bad!r} ({log[bad]})')
            logs.append(log)
            if it % 10 == 0:
                bar.set_postfix({k: f'{v:.4g}' for k, v in log.items()})
            if (it + 1) % self.checkpoint_every == 0 or it + 1 == num_iters:
                bad = first_non_finite(state)   # never checkpoint (or cache) a diverged model
                if bad is not None:
                    raise TrainingDiverged(name, it, f'tensor {bad}')
                atomic_torch_save({'iteration': it + 1, 'state': {k: v.state_dict() for k, v in state.items()},
                                   'logs': logs, 'rng': rng_state()}, path)
        return logs
