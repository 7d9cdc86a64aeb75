"""The suite's registries (mmengine ``Registry``): datasets, UDA methods and evaluators.

Networks are not registered here: they are mmseg models built through mmseg's ``MODELS`` from
config dicts (``udabench.methods.networks``).
"""
from __future__ import annotations

from mmengine.registry import Registry

DATASETS = Registry('uda dataset', locations=['udabench.datasets'])
METHODS = Registry('uda method', locations=['udabench.methods'])
EVALUATORS = Registry('uda evaluator', locations=['udabench.evaluation'])


def registered(registry: Registry) -> list[str]:
    """Names registered in ``registry``, after importing the modules that register them."""
    registry.import_from_location()
    return sorted(registry.module_dict)


def lookup(registry: Registry, name: str):
    """The class registered as ``name``; an unknown name raises an error listing the known ones."""
    names = registered(registry)
    if name not in names:
        raise KeyError(f'{registry.name}: unknown name {name!r}; registered: {", ".join(names)}')
    return registry.module_dict[name]


def build(registry: Registry, cfg: dict, **kwargs):
    """Instantiate ``cfg['type']`` from ``registry`` with the other keys of ``cfg`` and ``kwargs``."""
    cfg = dict(cfg)
    name = cfg.pop('type')
    cls = lookup(registry, name)
    try:
        return cls(**cfg, **kwargs)
    except TypeError as err:   # e.g. a misspelt key given with --set method.<key>=...
        raise ValueError(f'{registry.name} {name!r} rejects its config {sorted(cfg)}: {err}') from err
