"""Checks made before any training: names, ``--set`` keys and values, declared ranges, folders.

Every failure is a ``KeyError``/``ValueError``/``OSError`` naming the option, what was given and
what is expected, raised before a stage starts.
"""
from __future__ import annotations

import fnmatch
import inspect
import math
import re
import tempfile
from pathlib import Path

import torch

from .engine import PRECISIONS

#: ``--study`` and ``--tag`` become folder and file names: letters, digits and ``_ . = -`` only.
SAFE_NAME = re.compile(r'^[A-Za-z0-9_.=-]+$')

#: Keys a ``--set`` may add although the composed config lacks them (set by the CLI's own options).
OPTIONAL_KEYS = {'net.pretrained': (str, type(None))}


def check_safe_name(option: str, value: str) -> str:
    """``value`` of ``option`` (``--study``/``--tag``) if it is a safe file name (or empty)."""
    if value and (not SAFE_NAME.match(value) or '..' in value):
        raise ValueError(f'{option} {value!r}: only letters, digits and _ . = - are allowed (no "..", no "/")')
    return value


def method_parameters(cls) -> set:
    """Constructor parameters of a method class and of its bases (subclasses pass ``**kwargs`` on)."""
    names = set()
    for klass in cls.__mro__:
        if '__init__' in vars(klass) and klass.__module__.startswith('udabench'):
            names |= {n for n, p in inspect.signature(klass.__init__).parameters.items()
                      if n != 'self' and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    return names


def _type_ok(default, value) -> bool:
    """``value`` has ``default``'s type (a float default takes ints; None is left to ``RANGES``)."""
    if default is None or value is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def _type_name(default) -> str:
    return {bool: 'True or False', int: 'an integer', float: 'a number', str: 'a string', list: 'a list',
            tuple: 'a list', dict: 'a dict'}.get(type(default), type(default).__name__)


def check_overrides(base: dict, overrides: dict, method_params: set) -> None:
    """Each ``--set`` key must name a key of the composed config ``base`` (any section) and its value
    must have the default's type; new keys are allowed only as method constructor parameters
    (``method.<param>``) and torch optimiser arguments (``...optimizer.<arg>``)."""
    for key, value in overrides.items():
        if key in OPTIONAL_KEYS:
            if not isinstance(value, OPTIONAL_KEYS[key]):
                raise ValueError(f'--set {key}={value!r}: expected a string')
            continue
        parts = key.split('.')
        node, path = base, []
        for part in parts:
            if isinstance(node, dict) and part in node:
                node, path = node[part], path + [part]
                continue
            parent = '.'.join(path)
            if isinstance(node, dict) and path == ['method'] and len(parts) == 2 and part in method_params:
                node = None          # a constructor parameter the config leaves at its default
                break
            if isinstance(node, dict) and path and path[-1].endswith('optimizer') and len(parts) == len(path) + 1:
                cls = getattr(torch.optim, str(node.get('type')), None)
                if cls is not None and part in inspect.signature(cls.__init__).parameters:
                    node = None
                    break
            known = sorted(node) if isinstance(node, dict) else []
            where = f'{parent!r}' if parent else 'the config'
            raise KeyError(f'--set {key}: {where} has no key {part!r}'
                           + (f'; it has: {", ".join(map(str, known))}' if known else f' ({parent} is not a section)'))
        if parts[-1].endswith('epochs') and _number(value):
            continue             # epochs are a number (fractions of an epoch are fine); its range is checked below
        if not _type_ok(node, value):
            raise ValueError(f'--set {key}={value!r}: expected {_type_name(node)} like its default {node!r}')


def _positive_int(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _image_size(v):
    return _positive_int(v) and v >= 8 and v % 4 == 0 and ((v // 4) & (v // 4 - 1)) == 0


#: (dotted-key pattern, check, what is expected): every key of the composed config matching a
#: pattern is checked, so a bad config file is caught as well as a bad ``--set``. (Methods check
#: their own options when built, before training: e.g. ``method.target_fraction``.)
RANGES = (
    ('profile.image_size', _image_size, 'an integer 4*2^k >= 8 (8, 16, 32, 64, 128, ...)'),
    ('profile.counts.*', lambda v: v is None or _positive_int(v), 'None (all images) or an integer >= 1'),
    ('*iterations', _positive_int, 'an integer >= 1'),
    ('*.stop_iters', _positive_int, 'an integer >= 1'),
    ('*.max_iters', lambda v: v is None or _positive_int(v), 'None (the original\'s ratio) or an integer >= 1'),
    ('*batch_size', _positive_int, 'an integer >= 1'),
    ('*checkpoint_every', _positive_int, 'an integer >= 1'),
    ('*.rounds', _positive_int, 'an integer >= 1'),
    ('*.restarts', _positive_int, 'an integer >= 1'),
    ('profile.width', _positive_int, 'an integer >= 1'),
    ('profile.precision', lambda v: v in PRECISIONS, ' or '.join(map(repr, PRECISIONS))),
    ('profile.depth', _positive_int, 'an integer >= 1'),
    ('*epochs', lambda v: _number(v) and v > 0, 'a number > 0'),
    ('*.lr', lambda v: _number(v) and v > 0, 'a number > 0'),
    ('*momentum', lambda v: _number(v) and 0 <= v <= 1, 'a number in [0, 1]'),
    ('*.ssl_cap', lambda v: _number(v) and 0 <= v <= 1, 'a number in [0, 1]'),
    ('*weight_decay', lambda v: _number(v) and v >= 0, 'a number >= 0'),
    ('*poly_power', lambda v: _number(v) and v >= 0, 'a number >= 0'),
    ('*lambda_*', lambda v: _number(v) and v >= 0, 'a finite number >= 0'),
)


def flatten(cfg: dict, prefix: str = '') -> dict:
    """``{'a': {'b': 1}}`` -> ``{'a.b': 1}`` (lists are leaves)."""
    out = {}
    for key, value in cfg.items():
        name = f'{prefix}{key}'
        if isinstance(value, dict):
            out.update(flatten(value, name + '.'))
        else:
            out[name] = value
    return out


def check_ranges(cfg: dict) -> None:
    """Every key of ``cfg`` matching a ``RANGES`` pattern holds a value in its declared range
    (``grid`` and ``method_profiles`` are templates, checked once merged)."""
    for key, value in flatten({k: v for k, v in cfg.items() if k not in ('grid', 'method_profiles')}).items():
        for pattern, ok, expected in RANGES:
            if fnmatch.fnmatchcase(key, pattern) and not ok(value):
                raise ValueError(f'config key {key} = {value!r}: expected {expected}')


def check_writable(path, option: str) -> None:
    """``path`` (given as ``option``) is, or can be made, a folder this process can write in."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f'{option} {path} is not a folder')
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise PermissionError(f'{option} {path} is not writable: {err.strerror or err}') from err
