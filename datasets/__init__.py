"""Dataset registry entries: the real sets (COMPAQ, SNV, Hand Gesture; SYNTHIA, Cityscapes) and their
synthetic twins.

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

from . import synthetic, synthetic_urban
from .base import SegmentationSet
from .real import load_folder

logger = logging.getLogger('udabench')

#: Public name -> (real folder under the data root, band, synthetic twin).
DOMAINS = {
    'compaq': ('compaq', 'visible_red', 'synth_compaq'),
    'snv': ('snv', 'nir', 'synth_snv'),
    'hand': ('hand', 'nir', 'synth_hand'),
    'synthia': ('synthia', 'rgb', 'synth_synthia'),
    'cityscapes': ('cityscapes', 'rgb', 'synth_cityscapes'),
}
URBAN = ('synthia', 'cityscapes')


def _real_loader(name: str, folder: str, band: str):
    def load(size: int, count: int | None = None, seed: int = 0, data_root='data/real', cache_dir=None):
        data = load_folder(name, Path(data_root) / folder, size, band)
        return data if count is None or count >= len(data) else data.subset(np.arange(count))
    load.__doc__ = f'Real {name} ({band}) from <data_root>/{folder}/, resized to size x size.'
    return load


def _real_urban_loader(name: str, folder: str):
    def load(size: int, count: int | None = None, seed: int = 0, data_root='data/real', cache_dir=None):
        raise NotImplementedError(
            f'real {name} found under {Path(data_root) / folder}: the runner does not stream the real urban sets '
            'yet (datasets/urban.py lists and reads them per batch; the runner trains on in-memory sets). '
            f'Move the folder away to run on the synthetic twin synth_{name}.')
    load.__doc__ = f'Real {name} from <data_root>/{folder}/ (not yet streamed through the runner).'
    return load


def _rendered(path: Path, what: str, render) -> dict:
    """The arrays of a twin, rendered once by ``render()`` and cached at ``path``."""
    if path.exists():
        return dict(np.load(path))
    logger.info('rendering %s into %s', what, path)
    arrays = render()
    atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))
    return arrays


def _synthetic_urban_loader(domain: str):
    def load(size: int, count: int | None = None, seed: int = 0, data_root=None, cache_dir='data/synthetic'):
        count = synthetic_urban.DOMAINS[domain]['default_count'] if count is None else count
        version = synthetic_urban.URBAN_RENDERER_VERSION
        arrays = _rendered(Path(cache_dir) / f'{domain}_n{count}_s{size}_seed{seed}_v{version}.npz',
                           f'{count} {domain} images at {size}x{2 * size}',
                           lambda: synthetic_urban.generate(domain, count, size, 2 * size, seed))
        return SegmentationSet(name=domain, images=arrays['images'], masks=arrays['labels'], depth=arrays['depth'],
                               data_source='synthetic', description=f'procedural urban twin, renderer v{version}, seed {seed}')
    load.__doc__ = f'Synthetic {domain}: ``size`` rows by 2 x ``size`` columns (Cityscapes\' aspect), cached.'
    return load


def _synthetic_loader(domain: str):
    def load(size: int, count: int | None = None, seed: int = 0, data_root=None, cache_dir='data/synthetic'):
        count = synthetic.DOMAINS[domain]['default_count'] if count is None else count
        version = synthetic.RENDERER_VERSION
        arrays = _rendered(Path(cache_dir) / f'{domain}_n{count}_s{size}_seed{seed}_v{version}.npz',
                           f'{count} {domain} images at {size}x{size}',
                           lambda: synthetic.generate(domain, count, size, seed))
        return SegmentationSet(name=domain, images=arrays['images'], masks=arrays['masks'],
                               depth=arrays['depth'].astype(np.float32), data_source='synthetic',
                               description=f'procedural twin, renderer v{version}, seed {seed}')
    load.__doc__ = f'Synthetic {domain}, rendered once and cached under cache_dir.'
    return load


for _name, (_folder, _band, _twin) in DOMAINS.items():
    urban = _name in URBAN
    DATASETS.register_module(name=_name, module=_real_urban_loader(_name, _folder) if urban
                             else _real_loader(_name, _folder, _band))
    DATASETS.register_module(name=_twin, module=(_synthetic_urban_loader if urban else _synthetic_loader)(_twin))


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
    twins = {**synthetic.DOMAINS, **synthetic_urban.DOMAINS}
    if name in twins:
        return name, 'synthetic'
    raise KeyError(f'unknown domain {name!r}; expected one of {sorted(DOMAINS) + sorted(twins)}')
