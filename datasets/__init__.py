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

from . import synthetic, synthetic_urban, urban
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
    def load(size: int, count: int | None = None, seed: int = 0, data_root='data/real', cache_dir='data/synthetic'):
        root = Path(data_root) / folder
        if name == 'synthia':
            files, test = urban.synthia_files(root).head(count), 0
        else:                                     # adapt on (the first ``count`` of) train, test on all of val
            train, val = urban.cityscapes_files(root, 'train').head(count), urban.cityscapes_files(root, 'val')
            files, test = train + val, len(val)
        arrays = urban.prepare(files, (size, 2 * size), Path(cache_dir) / 'prepared')
        return SegmentationSet(name=name, images=arrays['images'], masks=arrays['labels'],
                               depth=arrays.get('dada_depth'), data_source='real',
                               test_index=np.arange(len(files) - test, len(files)) if test else None,
                               description=f'{len(files)} images of {root}' + (f' ({test} of val)' if test else '')
                               + f', resized to {size}x{2 * size} and memory-mapped')
    load.__doc__ = (f'Real {name} from <data_root>/{folder}/, resized to size x 2 size once and memory-mapped '
                    f'from <cache_dir>/prepared/ (datasets/urban.py)')
    return load


def _rendered(path: Path, what: str, render) -> dict:
    """The arrays of a twin, rendered once by ``render()`` and cached at ``path``."""
    if path.exists():
        return dict(np.load(path))
    logger.info('rendering %s into %s', what, path)
    arrays = render()
    atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))
    return arrays


#: Per kind of twin: its renderer module, the array holding its labels, its width for a size, and
#: how to render ``count`` images of a domain at a size.
_TWIN_KINDS = {
    'skin': (synthetic, 'masks', lambda size: size, synthetic.generate),
    'urban': (synthetic_urban, 'labels', lambda size: 2 * size,
              lambda domain, count, size, seed: synthetic_urban.generate(domain, count, size, 2 * size, seed)),
}


def _synthetic_loader(domain: str, kind: str):
    module, labels, width, render = _TWIN_KINDS[kind]

    def load(size: int, count: int | None = None, seed: int = 0, data_root=None, cache_dir='data/synthetic'):
        count = module.DOMAINS[domain]['default_count'] if count is None else count
        version = module.RENDERER_VERSION
        arrays = _rendered(Path(cache_dir) / f'{domain}_n{count}_s{size}_seed{seed}_v{version}.npz',
                           f'{count} {domain} images at {size}x{width(size)}',
                           lambda: render(domain, count, size, seed))
        return SegmentationSet(name=domain, images=arrays['images'], masks=arrays[labels],
                               depth=arrays['depth'].astype(np.float32), data_source='synthetic',
                               description=f'procedural {"urban " if kind == "urban" else ""}twin, '
                                           f'renderer v{version}, seed {seed}')
    load.__doc__ = f'Synthetic {domain} ({kind} twin), rendered once at size x {width(1)} size and cached.'
    return load


for _name, (_folder, _band, _twin) in DOMAINS.items():
    _urban = _name in URBAN
    DATASETS.register_module(name=_name, module=_real_urban_loader(_name, _folder) if _urban
                             else _real_loader(_name, _folder, _band))
    DATASETS.register_module(name=_twin, module=_synthetic_loader(_twin, 'urban' if _urban else 'skin'))


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
