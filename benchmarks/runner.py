"""One benchmark run: compose the config, load data, fit the method, evaluate, write the result.

Configs are mmengine ``Config`` files under ``benchmarks/configs``: a profile (smoke, cpu,
paper), a network and a method, merged in that order, then ``--set key=value`` overrides, all
validated before anything trains (``validation``).

A run's own stages live in ``<work-dir>/<result path>/<run key>/``, the key hashing the resolved
config, the seed, the content of the source and target data, the code version, the thread count
and the device; ``<run key>.lock`` beside it admits one process at a time. A result file is trusted
(the run skipped) only when it parses, carries metrics (or a failure) and has the same run key.
"""
from __future__ import annotations

import ast
import itertools
import json
import logging
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config

from udabench import datasets as data_registry
from udabench.datasets.base import RowView
from udabench.registry import DATASETS, EVALUATORS, METHODS, build, lookup, registered

from .engine import (StageRunner, TrainingDiverged, configure_backend, fingerprint, keep_freed_memory, locked,
                     method_code_version)
from .results import (git_commit, machine, package_versions, summarise_training_log, training_log_path, write_json_atomic,
                      write_training_log)
from .tasks import TARGETS, TASKS, task_of
from .validation import check_overrides, check_ranges, check_safe_name, check_writable, method_parameters

logger = logging.getLogger('udabench')
CONFIG_DIR = Path(__file__).resolve().parent / 'configs'


def config_names(kind: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / kind).glob('*.py') if not p.stem.startswith('_'))


def _config_file(kind: str, name: str) -> Path:
    """The config file of a registered name (never a path: mmengine executes the file it reads)."""
    if name not in config_names(kind):
        raise KeyError(f'unknown {kind[:-1]} {name!r}; known: {", ".join(config_names(kind))}')
    return CONFIG_DIR / kind / f'{name}.py'


def parse_overrides(pairs: list[str]) -> dict:
    """``['a.b=1', 'c=foo']`` -> ``{'a.b': 1, 'c': 'foo'}`` (values parsed as Python literals when possible)."""
    out = {}
    for pair in pairs or []:
        if '=' not in pair:
            raise ValueError(f'--set expects key=value, got {pair!r}')
        key, value = pair.split('=', 1)
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def compose_config(method: str, net: str, profile: str, overrides: dict | None = None) -> Config:
    """profile + net + method config files, the method's per-profile settings, then ``overrides``
    (keys checked against the composed config, values against the defaults' types), then every
    declared range (``validation.RANGES``)."""
    cfg = Config()
    for kind, name in (('profiles', profile), ('nets', net), ('methods', method)):
        cfg.merge_from_dict(Config.fromfile(_config_file(kind, name)).to_dict())
    per_profile = cfg.get('method_profiles', {}).get(profile)
    if per_profile:
        cfg.merge_from_dict(per_profile)
    cls = lookup(METHODS, cfg.method['type'])   # an unknown type lists the registered methods
    if overrides:
        check_overrides(cfg.to_dict(), overrides, method_parameters(cls))
        cfg.merge_from_dict(overrides)
    check_ranges(cfg.to_dict())
    return cfg


def grid_points(cfg: Config) -> list[dict]:
    """The product of the method's declared ``grid`` (dotted key -> values), as override dicts; a
    method without a grid is an error."""
    grid = cfg.get('grid') or {}
    if not grid:
        raise ValueError(f'--grid: method {cfg.method["type"]!r} declares no grid')
    keys = sorted(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def run_points(cfg: Config, grid: bool = False, controls: bool = False) -> list[tuple[str, dict]]:
    """(tag, overrides) of every run a command makes for one seed: one untagged run, every point of the
    method's declared ``grid``, or (``controls``) each of its declared ``controls`` tagged by name."""
    if grid and controls:
        raise ValueError('--grid and --study controls exclude each other')
    if grid:
        return [(point_tag(point), point) for point in grid_points(cfg)]
    if controls:
        declared = cfg.get('controls')
        if not declared:
            raise ValueError(f'method {cfg.method["type"]!r} declares no controls (a `controls` dict in its config file)')
        return [(name, dict(point)) for name, point in declared.items()]
    return [('', {})]


def point_tag(point: dict) -> str:
    return '_'.join(f'{k.split(".")[-1]}={v}' for k, v in sorted(point.items()))


@dataclass
class RunSpec:
    method: str
    target: str
    net: str = 'deeplabv3plus'
    profile: str = 'cpu'
    seed: int = 0
    data_root: str = 'data/real'
    overrides: dict = field(default_factory=dict)
    tag: str = ''
    study: str = 'main'
    results_dir: str = 'results/runs'
    work_dir: str = 'work_dirs'
    synthetic_cache: str = 'data/synthetic'
    device: str = 'auto'
    progress: bool = True


def load_domain(name: str, profile: dict, spec: RunSpec):
    registered_name, source = data_registry.resolve(name, spec.data_root)
    if source == 'synthetic' and name in data_registry.DOMAINS:
        logger.warning('*** %s: no real data under %s/%s, using the SYNTHETIC twin %s ***', name,
                       spec.data_root, data_registry.DOMAINS[name][0], registered_name)
    loader = lookup(DATASETS, registered_name)
    count = profile['counts'].get(name.replace('synth_', ''))
    return loader(size=profile['image_size'], count=count, seed=0, data_root=spec.data_root,
                  cache_dir=spec.synthetic_cache)


def validate(spec: RunSpec) -> Config:
    """Every check that needs no data: names, config, seed, folders; the composed config."""
    check_safe_name('--study', spec.study)
    check_safe_name('--tag', spec.tag)
    task = task_of(spec.target)
    if not isinstance(spec.seed, int) or spec.seed < 0:
        raise ValueError(f'--seed {spec.seed!r}: expected an integer >= 0')
    cfg = compose_config(spec.method, spec.net, spec.profile, spec.overrides)
    method = build(METHODS, cfg.method)     # the method's own checks of its options (e.g. target_fraction)
    if task not in method.tasks:
        raise ValueError(f'--method {spec.method} is built for the {"/".join(method.tasks)} task, not {task} '
                         f'(--target {spec.target}); its multi-class form is not built yet')
    if cfg.net.get('pretrained'):
        from udabench.methods.networks import read_state_dict
        read_state_dict(cfg.net['pretrained'])
    check_writable(spec.results_dir, '--results-dir')
    check_writable(spec.work_dir, '--work-dir')
    return cfg


def data_source_label(source, target) -> str:
    kinds = {source.data_source, target.data_source}
    if len(kinds) == 1:
        return kinds.pop()
    return f'mixed (source {source.data_source}, target {target.data_source})'


def scorer(task: str):
    """The task's evaluator (``TASKS[task]['evaluator']``)."""
    return build(EVALUATORS, TASKS[task]['evaluator'])


def add_batch(evaluator, probs: np.ndarray, masks: np.ndarray) -> None:
    """Add predictions ``probs`` to ``evaluator``: skin probabilities (N, H, W) against 0/1 masks, or
    class probabilities (N, C, H, W) whose argmax is scored against class ids."""
    evaluator.update(probs if probs.ndim == 3 else probs.argmax(1), masks)


def score(probs: np.ndarray, masks: np.ndarray, task: str = 'skin') -> dict:
    """The task's scores of predictions ``probs`` over ``masks`` (``add_batch``)."""
    evaluator = scorer(task)
    add_batch(evaluator, probs, masks)
    return evaluator.compute()


def evaluate(method, images: RowView, labels, task: str, device: str, test_idx: np.ndarray | None = None) -> dict:
    """Every prediction step's scores of ``method`` on ``images`` (normalised) against ``labels``, a
    batch read and predicted at a time (a real target is never held whole, nor its predictions):
    ``{step: {'all': scores, 'test': scores}}``, 'test' over the rows ``test_idx`` (sorted) when
    given. Scores are sums of pixel counts and per-image values in image order, so they equal those
    of the whole set's predictions at once."""
    evaluators = defaultdict(lambda: {'all': scorer(task), **({'test': scorer(task)} if test_idx is not None else {})})
    start = 0
    for rows in images.batches(getattr(method, 'predict_batch_size', None)):
        stop = start + len(rows)
        masks = labels[start:stop]
        tested = None if test_idx is None else test_idx[(test_idx >= start) & (test_idx < stop)] - start
        for step, probs in method.predict_steps(torch.as_tensor(rows, device=device)).items():
            probs = probs.cpu().numpy()
            add_batch(evaluators[step]['all'], probs, masks)
            if tested is not None:
                add_batch(evaluators[step]['test'], probs[tested], masks[tested])
        start = stop
    return {step: {k: e.compute() for k, e in by_set.items()} for step, by_set in evaluators.items()}


def result_path(spec: RunSpec, data_source: str) -> Path:
    folder = 'synthetic' if data_source == 'synthetic' else 'real' if data_source == 'real' else 'mixed'
    name = f'{spec.target}_{spec.net}_seed{spec.seed}' + (f'_{spec.tag}' if spec.tag else '')
    study = '' if spec.study == 'main' else spec.study
    return Path(spec.results_dir) / spec.profile / folder / study / spec.method / f'{name}.json'


@dataclass
class Prepared:
    """A composed run: its config, unfitted method, fit context, data and result path."""
    cfg: Config
    method: object
    ctx: object
    source: object
    target: object
    test_idx: np.ndarray
    out: Path
    data_source: str
    device: str
    run_key: str = ''
    work: Path | None = None
    #: the flags the run's numbers depend on (``engine.configure_backend``), written in the result
    backend: dict = field(default_factory=dict)


def prepare(spec: RunSpec) -> Prepared:
    """Compose the config, load the data and build the method and its fit context (no training)."""
    from udabench.methods.base import FitContext
    cfg = validate(spec)
    profile = cfg.profile
    device = ('cuda' if torch.cuda.is_available() else 'cpu') if spec.device == 'auto' else spec.device
    task = TASKS[task_of(spec.target)]
    source = load_domain(task['source'], profile, spec)
    target = load_domain(spec.target, profile, spec)
    data_source = data_source_label(source, target)
    out = result_path(spec, data_source)
    train_idx, test_idx = target.split_indices(0.8, seed=0)
    if len(train_idx) == 0 or len(test_idx) == 0:
        raise ValueError(f'target {target.name} ({target.description or spec.target}) has {len(target)} images: too few '
                         'for the 80/20 split with at least one training and one test image (3 or more are needed)')
    key_parts = dict(code_version=method_code_version(cfg.method['type']), threads=torch.get_num_threads(), device=device,
                     precision=profile['precision'], deterministic=profile['deterministic'])
    run_key = fingerprint(cfg.to_dict(), spec.seed, source.content_hash, target.content_hash, key_parts)
    work = Path(spec.work_dir) / out.relative_to(spec.results_dir).with_suffix('') / run_key
    method = build(METHODS, cfg.method)
    ctx = FitContext(
        source=source, stages=StageRunner(work, profile['checkpoint_every'], spec.progress, seed=spec.seed),
        cache_dir=Path(spec.work_dir) / 'cache', seed=spec.seed, device=device, key_parts=key_parts,
        net=dict(cfg.net, width=profile['width'], depth=profile['depth'], in_channels=source.channels,
                 num_classes=task['num_classes']),
        seg_recipe=dict(cfg.seg_recipe, batch_size=profile['seg_batch_size'], epochs=profile['seg_epochs'],
                        loss=task['seg_loss'] or cfg.seg_recipe['loss']),
        target_images=adaptation_images(target, train_idx, task) if method.uses_target_images else None,
        target_labelled=target.subset(train_idx) if method.needs_target_labels else None, progress=spec.progress,
        precision=profile['precision'])
    return Prepared(cfg, method, ctx, source, target, test_idx, out, data_source, device, run_key, work,
                    configure_backend(device, profile['precision'], profile['deterministic']))


def adaptation_images(target, train_idx: np.ndarray, task: dict) -> RowView:
    """The normalised target images a method may train on: all, or the training split (``adapt_on``)."""
    return target.normalised_images(None if task['adapt_on'] == 'all' else train_idx)


def trusted_result(path: Path, run_key: str) -> dict | None:
    """The record at ``path`` if it parses, holds metrics or a failure, and was made with ``run_key``;
    else None, with a warning saying why it is re-run."""
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
        finished = isinstance(record, dict) and (bool(record.get('metrics')) or record.get('status') == 'failed')
    except (json.JSONDecodeError, UnicodeDecodeError):
        finished = False
    if not finished:
        logger.warning('result file %s is unreadable or has no metrics (truncated?): re-running', path)
        return None
    if record.get('run_key') != run_key:
        logger.warning('result file %s was made with run key %s, this run has %s (config, seed, data, code version, '
                       'threads or device differ): re-running', path, record.get('run_key'), run_key)
        return None
    return record


def run_status(path: Path) -> str:
    """``'ok'`` or ``'failed'`` for a result file written by ``run``."""
    return json.loads(Path(path).read_text()).get('status', 'ok')


def run(spec: RunSpec, force: bool = False) -> Path:
    """Run ``spec`` unless a trusted result file exists (``force`` re-runs the run's own stages; shared
    caches are reused when their key matches); return the result path. A diverged run writes a
    failure record there (``status: failed``) instead of metrics; ``run_status`` tells which."""
    keep_freed_memory()
    p = prepare(spec)
    if not force and trusted_result(p.out, p.run_key):
        logger.info('skipping %s: result exists (use --force to re-run)', p.out)
        return p.out
    with locked(p.work.with_name(p.run_key + '.lock'), wait=False, what=f'run {p.out} (key {p.run_key})'):
        if not force and trusted_result(p.out, p.run_key):   # finished by another process meanwhile
            return p.out
        if force and p.work.exists():
            shutil.rmtree(p.work)
        return _fit_and_write(spec, p)


def _count(images) -> int | None:
    return None if images is None else len(images)


def _provenance(spec: RunSpec, p: Prepared) -> dict:
    source, target = p.source, p.target
    return dict(
        method=spec.method, target=spec.target, net=spec.net, profile=spec.profile, seed=spec.seed,
        tag=spec.tag, study=spec.study, task=task_of(spec.target), seg_loss=p.ctx.seg_recipe['loss'],
        overrides=spec.overrides, config=p.cfg.to_dict(),
        data_source=p.data_source,
        data=dict(source=dict(name=source.name, kind=source.data_source, images=len(source), detail=source.description,
                              content_hash=source.content_hash),
                  target=dict(name=target.name, kind=target.data_source, images=len(target),
                              test_images=len(p.test_idx), adaptation_images=_count(p.ctx.target_images),
                              detail=target.description,
                              content_hash=target.content_hash)),
        device=p.device, threads=torch.get_num_threads(), backend=p.backend, code_version=p.ctx.key_parts['code_version'],
        run_key=p.run_key,
        stage_keys=dict(p.ctx.stages.keys), git_commit=git_commit(), packages=package_versions(),
        machine=machine(),
        finished=time.strftime('%Y-%m-%dT%H:%M:%S%z'),
        training=dict(log=training_log_path(p.out).name, summary=summarise_training_log(p.ctx.stages.history)))


def _fit_and_write(spec: RunSpec, p: Prepared) -> Path:
    torch.manual_seed(spec.seed)
    np.random.seed(spec.seed)
    started = time.time()
    p.method.to(p.device)
    try:
        p.method.fit(p.ctx)
    except TrainingDiverged as err:
        record = dict(_provenance(spec, p), status='failed', metrics={},
                      failure=dict(stage=err.stage, step=err.step, value=err.value, message=str(err)),
                      wall_time_s=dict(fit=time.time() - started, total=time.time() - started))
        write_training_log(training_log_path(p.out), p.ctx.stages.history)
        write_json_atomic(p.out, record)
        logger.error('%s: wrote the failure record %s', err, p.out)
        return p.out
    fit_seconds = time.time() - started
    # The oracle trained on the target's 80 %: it is scored on the held-out 20 % only. The others
    # are scored on the whole target (seed 002 §5.3) and, for comparison with it, on that 20 %.
    oracle = p.method.needs_target_labels
    task = task_of(spec.target)
    if oracle:       # its held-out split, in memory (as its training split, ``target_labelled``)
        scored = p.target.subset(p.test_idx)
        scores = evaluate(p.method, scored.normalised_images(), scored.masks, task, p.device)
        metrics = {'target_test': scores['final']['all']}
    else:
        scores = evaluate(p.method, p.target.normalised_images(), p.target.masks, task, p.device, p.test_idx)
        metrics = {'target_test': scores['final']['test'], 'target_all': scores['final']['all']}
    trace = {step: by_set['all'] for step, by_set in scores.items() if step != 'final'}
    if trace:
        metrics['trace'] = trace
    extra = p.method.extra_results() if hasattr(p.method, 'extra_results') else {}
    record = dict(_provenance(spec, p), status='ok', metrics=metrics, **extra,
                  wall_time_s=dict(fit=fit_seconds, total=time.time() - started))
    write_training_log(training_log_path(p.out), p.ctx.stages.history)
    write_json_atomic(p.out, record)
    headline = TASKS[task]['headline']
    logger.info('wrote %s: %s', p.out, {k: round(v[headline], 4) for k, v in metrics.items() if headline in v})
    return p.out


def describe_registries() -> str:
    return '\n'.join(f'{title}: {", ".join(names)}' for title, names in (
        ('methods (configs for --method)', config_names('methods')), ('method types', registered(METHODS)),
        ('datasets', registered(DATASETS)),
        ('evaluators', registered(EVALUATORS)),
        ('networks', config_names('nets')), ('profiles', config_names('profiles'))))
