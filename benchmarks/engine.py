"""Training plumbing shared by every method: seeded batches, poly LR, resumable stages.

A *stage* (e.g. "segmentation", "vae", "adaptation") is a loop of ``step(iteration)`` calls whose
modules and optimisers are checkpointed atomically every ``checkpoint_every`` iterations; an
interrupted stage resumes from its last checkpoint. Batches depend only on (seed, iteration), so a
resumed stage sees the batches the uninterrupted one would have seen.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

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


def poly_lr(optimizer: torch.optim.Optimizer, base_lrs: list[float], iteration: int, max_iters: int,
            power: float = 0.9) -> None:
    """The poly schedule lr = base * (1 - it / max_it) ** power (DeepLab, AdaptSegNet, ADVENT)."""
    factor = (1 - iteration / max_iters) ** power
    for group, base in zip(optimizer.param_groups, base_lrs):
        group['lr'] = base * factor


def build_optimizer(params, cfg: dict) -> torch.optim.Optimizer:
    """``dict(type='RMSprop'|'SGD'|'Adam', **kwargs)`` -> the torch optimiser."""
    cfg = dict(cfg)
    name = cfg.pop('type')
    if not hasattr(torch.optim, name):
        raise KeyError(f'unknown optimizer type {name!r} (a torch.optim class name is expected)')
    return getattr(torch.optim, name)(params, **cfg)


def atomic_torch_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    torch.save(obj, tmp)
    os.replace(tmp, path)


class StageRunner:
    """Runs named, checkpointed training stages inside one work directory."""

    def __init__(self, work_dir: Path, checkpoint_every: int = 200, progress: bool = True,
                 history: dict | None = None, prefix: str = ''):
        self.work_dir = Path(work_dir)
        self.checkpoint_every = checkpoint_every
        self.progress = progress
        #: stage name (with ``prefix``) -> every step's log, from iteration 0, also across resumes and
        #: cache hits (the logs are checkpointed); runners made by ``child`` share it.
        self.history = {} if history is None else history
        self.prefix = prefix

    def child(self, work_dir: Path, prefix: str) -> 'StageRunner':
        """A runner in another folder (a cache) whose stage logs land in this runner's ``history``."""
        return StageRunner(work_dir, self.checkpoint_every, self.progress, self.history, prefix)

    def checkpoint(self, stage: str) -> Path:
        return self.work_dir / f'{stage}.pth'

    def run(self, stage: str, step, num_iters: int, state: dict) -> list[dict]:
        """Call ``step(it) -> dict of floats`` for it in [resume point, num_iters); return every
        iteration's log (those before the resume point come from the checkpoint).

        ``state`` maps names to modules/optimisers saved in the checkpoint.
        """
        path = self.checkpoint(stage)
        start, logs = 0, []
        if path.exists():
            saved = torch.load(path, map_location='cpu', weights_only=False)
            for name, obj in state.items():
                obj.load_state_dict(saved['state'][name])
            start, logs = saved['iteration'], list(saved.get('logs', []))
            if start < num_iters:
                logger.info('resuming stage %s at iteration %d of %d', stage, start, num_iters)
        self.history[self.prefix + stage] = logs
        bar = tqdm(range(start, num_iters), initial=start, total=num_iters, desc=stage,
                   disable=not self.progress or start >= num_iters, leave=False, dynamic_ncols=True)
        for it in bar:
            log = step(it)
            logs.append(log)
            if it % 10 == 0:
                bar.set_postfix({k: f'{v:.4g}' for k, v in log.items()})
            if (it + 1) % self.checkpoint_every == 0 or it + 1 == num_iters:
                atomic_torch_save({'iteration': it + 1, 'state': {k: v.state_dict() for k, v in state.items()},
                                   'logs': logs}, path)
        return logs
