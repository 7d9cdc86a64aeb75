"""Dataset registry entries: the real sets (COMPAQ, SNV, Hand Gesture) and their synthetic twins.

Every registered entry is a loader ``load(size, count, seed, data_root, cache_dir) -> SegmentationSet``.
``resolve(role, name, data_root)`` picks the real set when its folder exists and the synthetic
twin otherwise, and says which it picked.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from udabench.registry import DATASETS
from udabench.results import atomic_write

from . import synthetic
from .base import SegmentationSet
from .real import load_folder

logger = logging.getLogger('udabench')

#: Public name -> (real folder under the data root, band, synthetic twin).
DOMAINS = {
    'compaq': ('compaq', 'visible_red', 'synth_compaq'),
    'snv': ('snv', 'nir', 'synth_snv'),
    'hand': ('hand', 'nir', 'synth_hand'),
}


def _real_loader(name: str, folder: str, band: str):
    def load(size: int, count: int | None = None, seed: int = 0, data_root='data/real', cache_dir=None):
        data = load_folder(name, Path(data_root) / folder, size, band)
        return data if count is None or count >= len(data) else data.subset(np.arange(count))
    load.__doc__ = f'Real {name} ({band}) from <data_root>/{folder}/, resized to size x size.'
    return load


def _synthetic_loader(domain: str):
    def load(size: int, count: int | None = None, seed: int = 0, data_root=None, cache_dir='data/synthetic'):
        count = synthetic.DOMAINS[domain]['default_count'] if count is None else count
        path = Path(cache_dir) / f'{domain}_n{count}_s{size}_seed{seed}_v{synthetic.RENDERER_VERSION}.npz'
        if path.exists():
            arrays = dict(np.load(path))
        else:
            logger.info('rendering %d %s images at %dx%d into %s', count, domain, size, size, path)
            arrays = synthetic.generate(domain, count, size, seed)
            atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))
        return SegmentationSet(name=domain, images=arrays['images'], masks=arrays['masks'],
                               depth=arrays['depth'].astype(np.float32), data_source='synthetic',
                               description=f'procedural twin, renderer v{synthetic.RENDERER_VERSION}, seed {seed}')
    load.__doc__ = f'Synthetic {domain}, rendered once and cached under cache_dir.'
    return load


for _name, (_folder, _band, _twin) in DOMAINS.items():
    DATASETS.register_module(name=_name, module=_real_loader(_name, _folder, _band))
    DATASETS.register_module(name=_twin, module=_synthetic_loader(_twin))


def resolve(name: str, data_root) -> tuple[str, str]:
    """Map a public domain name to the registered dataset to load and its data source.

    ``compaq``/``snv``/``hand`` load the real set when ``<data_root>/<folder>`` exists and their
    synthetic twin otherwise; ``synth_*`` names always load the twin.
    """
    if name in DOMAINS:
        folder, _, twin = DOMAINS[name]
        if (Path(data_root) / folder).is_dir():
            return name, 'real'
        return twin, 'synthetic'
    if name in synthetic.DOMAINS:
        return name, 'synthetic'
    raise KeyError(f'unknown domain {name!r}; expected one of {sorted(DOMAINS) + sorted(synthetic.DOMAINS)}')
