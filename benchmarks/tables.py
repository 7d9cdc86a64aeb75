"""Table specs of the paper, built as pandas DataFrames from result files.

Each table is built per (profile, data source) group so that a synthetic number never shares a
table with a real one; the caption names both. A cell is the mean (± std over seeds when there
are several, with n shown when n < 3) of the chosen metric; a missing run is shown as missing,
never filled, and a run that diverged (a failure record) as ``failed`` (with a count beside the
mean when only some seeds failed); a cell whose runs come from different code versions is refused
with an error naming the files. For methods with a grid, the point with the best mean *selection
metric* is chosen, and the table's notes say which criterion chose each cell. ``delta_table`` gives
each method's paired difference to Source Only (and to its fine-tuning control, where the
``controls`` study has one).
"""
from __future__ import annotations

import contextlib
import contextvars
import hashlib
import itertools
import json
import re
from collections import defaultdict

import numpy as np
import pandas as pd
from scipy import stats

TARGET_NAMES = {'snv': 'SNV', 'hand': 'Hand Gesture'}
URBAN_TARGET = 'cityscapes'
NET_NAMES = {'unet': 'UNet', 'deeplabv3plus': 'DeepLabv3+', 'fpn': 'FPN', 'linknet': 'Linknet', 'pspnet': 'PSPNet'}
METHOD_NAMES = {'source_only': 'Source Only', 'adaptsegnet': 'AdaptSegNet', 'advent': 'AdvEnt',
                'minent': 'MinEnt', 'clan': 'CLAN', 'bdl': 'BDL', 'dise': 'DISE', 'dada': 'DADA',
                'glss': 'GLSS', 'cosine_similarity': 'Cosine similarity (Chung 2022)',
                'depth_distribution': 'Depth distribution (Wu 2022)',
                'oracle': 'Oracle (supervised on target)',
                'unsup_backprop': 'Kanezaki clusters (label-free refinement of Source Only)'}
TABLE2_METHODS = ('source_only', 'adaptsegnet', 'advent', 'minent', 'clan', 'bdl', 'dise', 'dada', 'glss',
                  'cosine_similarity', 'depth_distribution', 'unsup_backprop')
MISSING = '–'
FAILED = 'failed'
SIGNIFICANT = '*'


def _target_key(record) -> str:
    return record['target'].replace('synth_', '')


def _n(count: int) -> str:
    """The number of seeds behind a cell, shown only when it is below the planned three."""
    return f' (n={count})' if count < 3 else ''


def _cell(values: list[float]) -> str:
    """mean ± sample std over the seeds present (n shown when n < 3); NaN values are failed runs."""
    failed = sum(1 for v in values if np.isnan(v))     # NaN: a failure record (``_values``)
    values = [v for v in values if not np.isnan(v)]
    if failed:
        return FAILED if not values else f'{_cell(values)} ({failed} failed)'
    if not values:
        return MISSING
    if len(values) == 1:
        return f'{values[0]:.3f}{_n(1)}'
    return f'{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}{_n(len(values))}'


def code_version(record: dict) -> str:
    """The code version a run was made with: ``code_version`` when the result file has it, else its
    git commit without the ``+dirty`` suffix."""
    if record.get('code_version'):
        return str(record['code_version'])
    return str(record.get('git_commit', 'unknown')).removesuffix('+dirty')


def _name(record: dict) -> str:
    return record.get('_path') or (f"{record['method']} {record['target']} {record['net']} seed {record['seed']}"
                                   + (f" tag {record['tag']}" if record.get('tag') else ''))


def _config_digest(record: dict) -> str:
    return hashlib.sha1(json.dumps(record.get('config'), sort_keys=True, default=str).encode()).hexdigest()[:8]


def cpu_kind(record: dict) -> str:
    """The kind of CPU a run was computed on: its model and instruction set (``machine.cpu`` and
    ``machine.cpu_capability``), e.g. 'AMD EPYC (AVX512)'; 'unrecorded' for result files older than
    the fields. One seed's numbers differ between CPU kinds (other kernels, other rounding), on one
    instruction set too: Source Only on the hand twin, seed 1, 0.333 IoU on an AMD EPYC (AVX512) and
    0.441 on an Intel Xeon (AVX512), same code, seed and thread count."""
    machine = record.get('machine') or {}
    capability = machine.get('cpu_capability')
    if not capability:
        return 'unrecorded'
    return f'{machine["cpu"]} ({capability})' if machine.get('cpu') else str(capability)


CPU_NOTE = ('Both runs of a pair were computed on one kind of CPU (`machine.cpu` and `machine.cpu_capability` in the '
            'result files; a pair across kinds is refused, files made before the fields were recorded counting as a '
            'kind of their own).')


def check_one_version(records: list[dict]) -> None:
    """Refuse (ValueError naming the files) a cell whose runs come from different code versions,
    different CPU kinds (``cpu_kind``) or, within one grid point (``tag``), different composed
    configs (a config default changed between them: the older runs are stale). A cell's grid points
    differ in config by design; they must still share the code and the CPU kind to be compared."""
    _refuse_mixed(records, 'code versions', code_version)
    _refuse_mixed(records, 'CPU kinds', cpu_kind)
    for point in _by_tag(records).values():
        _refuse_mixed(point, 'configs', _config_digest)


def _refuse_mixed(records: list[dict], what: str, version) -> None:
    by_version = defaultdict(list)
    for r in records:
        by_version[version(r)].append(_name(r))
    if len(by_version) > 1:
        listing = '; '.join(f'{v}: {", ".join(names)}' for v, names in sorted(by_version.items()))
        raise ValueError(f'a table cell mixes runs from {len(by_version)} {what}, refusing to average '
                         f'them (re-make the older runs): {listing}')


def _by_tag(records: list[dict]) -> dict:
    """A cell's runs per grid point (``tag``; '' is the default configuration), in first-seen order."""
    by_tag = defaultdict(list)
    for r in records:
        by_tag[r.get('tag', '')].append(r)
    return by_tag


def _flat(tree: dict, prefix: str = '') -> dict:
    """A nested config as {dotted key: value}, the form of ``--set`` keys and declared controls."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f'{prefix}{key}.'))
        else:
            out[f'{prefix}{key}'] = value
    return out


def is_control_of(run: dict, control: dict) -> bool:
    """Whether ``control`` is ``run``'s own control: ``run``'s composed config with the overrides its
    method declares for that control (``config.controls[tag]``) is ``control``'s config. So a grid
    point's fine-tuning control is the default's only where the point changes target weights alone."""
    overrides = (run.get('config') or {}).get('controls', {}).get(control.get('tag'))
    return overrides is not None and {**_flat(run['config']), **overrides} == _flat(control.get('config') or {})


def paired_delta(runs: list[dict], reference: list[dict], split: str = 'target_all',
                 metric: str = 'iou') -> dict | None:
    """Mean over seeds of (run − reference run of the same seed), with a 95 % Student-t interval.

    Returns ``dict(n, mean, low, high)`` (``low``/``high`` None when n < 2) or None when no seed is
    in both. A pair of runs from different CPU kinds (``cpu_kind``) is refused with a ValueError
    naming both files: the same seed is another network there.
    """
    ref = {r['seed']: r for r in reference if split in r['metrics']}
    pairs = [(r, ref[r['seed']]) for r in sorted(runs, key=lambda r: r['seed']) if split in r['metrics'] and r['seed'] in ref]
    mixed = [f'{_name(r)} ({cpu_kind(r)}) ~ {_name(q)} ({cpu_kind(q)})' for r, q in pairs if cpu_kind(r) != cpu_kind(q)]
    if mixed:
        raise ValueError('a paired difference would pair runs computed on different kinds of CPU (one seed is '
                         f'another network there), refusing it (re-make one side on one machine): {"; ".join(mixed)}')
    return t_interval([r['metrics'][split][metric] - q['metrics'][split][metric] for r, q in pairs],
                      [r['seed'] for r, _ in pairs])


def t_interval(diffs: list[float], seeds: list[int] | None = None) -> dict | None:
    """``dict(n, mean, low, high, per_seed)``: the mean of paired differences with its 95 % Student-t
    interval (``low``/``high`` None when n < 2) and, given the seed of each, {seed: difference}; None
    without differences."""
    if not diffs:
        return None
    n, mean = len(diffs), float(np.mean(diffs))
    per_seed = dict(zip(seeds, map(float, diffs))) if seeds is not None else {}
    if n < 2:
        return dict(n=n, mean=mean, low=None, high=None, per_seed=per_seed)
    half = stats.t.ppf(0.975, n - 1) * np.std(diffs, ddof=1) / np.sqrt(n)
    return dict(n=n, mean=mean, low=mean - half, high=mean + half, per_seed=per_seed)


_PER_SEED = contextvars.ContextVar('per_seed', default=False)
PER_SEED_NOTE = ('Each paired difference ends with {seed: difference}: the differences of the single seeds that its '
                 'mean and interval are made of (make_tables.py --per-seed).')


@contextlib.contextmanager
def per_seed_differences():
    """Within it, every paired-difference cell also lists its per-seed differences,
    '+0.150 [+0.026, +0.274] * {0: +0.100, 1: +0.150, 2: +0.200}': whether a direction holds on
    every seed, which an interval over three seeds cannot show."""
    token = _PER_SEED.set(True)
    try:
        yield
    finally:
        _PER_SEED.reset(token)


def _delta_cell(delta: dict | None) -> str:
    """'+0.050 [+0.010, +0.090] *' (* where the interval excludes 0), n shown when n < 3; within
    ``per_seed_differences`` followed by {seed: difference}."""
    if delta is None:
        return MISSING
    text = f"{delta['mean']:+.3f}"
    if delta['low'] is not None:
        text += f" [{delta['low']:+.3f}, {delta['high']:+.3f}]"
        if delta['low'] > 0 or delta['high'] < 0:
            text += f' {SIGNIFICANT}'
    text += _n(delta['n'])
    if _PER_SEED.get() and delta.get('per_seed'):
        text += ' {' + ', '.join(f'{seed}: {diff:+.3f}' for seed, diff in sorted(delta['per_seed'].items())) + '}'
    return text


_DELTA_CELL = re.compile(r'([+-]\d+\.\d+)(?: \[([+-]\d+\.\d+), ([+-]\d+\.\d+)\]( \*)?)?(?: \(n=(\d+)\))?'
                         r'(?: \{[^}]*\})?')


def parse_delta_cell(text: str) -> dict | None:
    """A cell written by ``_delta_cell`` read back as ``dict(n, mean, low, high, resolved)``, to the three
    decimals it shows (``resolved`` is its own mark, set on the unrounded interval; ``n`` 3 where the cell
    shows none, i.e. three seeds or more); None for any other cell (a mean ± std, a missing or empty one)."""
    match = _DELTA_CELL.fullmatch(str(text))
    if not match:
        return None
    mean, low, high, mark, n = match.groups()
    return dict(n=int(n) if n else 3, mean=float(mean), low=None if low is None else float(low),
                high=None if high is None else float(high), resolved=bool(mark))


def select(records: list[dict], split: str, criterion: str = 'target_all') -> tuple[list[dict], str]:
    """Among one cell's records (several grid points x seeds), those of the best grid point.

    ``criterion`` is the metrics split whose mean IoU picks the point: ``target_all`` (the
    paper's: the reported target IoU itself) or ``target_test`` (the held-out 20 % split). Only the
    points made on every seed of the cell compete (a point still being made is not chosen on a mean
    over fewer seeds); where none is, those with the most seeds.
    """
    by_tag = _by_tag(records)
    if len(by_tag) <= 1:
        return records, ''
    seeds = {tag: {r['seed'] for r in rs} for tag, rs in by_tag.items()}
    every_seed = set().union(*seeds.values())
    candidates = [t for t in by_tag if seeds[t] == every_seed] or \
        [t for t in by_tag if len(seeds[t]) == max(map(len, seeds.values()))]

    def score(rs):
        vals = [r['metrics'][criterion]['iou'] for r in rs if criterion in r['metrics']]
        return np.mean(vals) if vals else -np.inf
    best = max(candidates, key=lambda t: score(by_tag[t]))
    return by_tag[best], best


def _values(records, split, metric):
    """The metric of each record that has it; NaN for each failed run (one code version only)."""
    check_one_version(records)
    return [r['metrics'][split][metric] if split in r['metrics'] else float('nan') for r in records
            if split in r['metrics'] or r.get('status') == 'failed']


def groups(records: list[dict]) -> dict:
    """Records grouped by (profile, data source)."""
    out = defaultdict(list)
    for r in records:
        out[(r['profile'], r['data_source'])].append(r)
    return dict(out)


def table1(records: list[dict]) -> pd.DataFrame:
    """Seed 002 Table 1: supervised on the target, 80/20 split, IoU and Dice on the 20 % test part;
    and, where Source Only was made on the net, the oracle's IoU minus Source Only's on the same test
    part and seed (is the gap that adaptation should close real?), with its 95 % t interval."""
    rows = {}
    for net in ('fpn', 'unet', 'deeplabv3plus', 'linknet', 'pspnet'):
        row = {}
        for target in TARGET_NAMES:
            oracle, source_only = ([r for r in records if r['method'] == method and r['net'] == net
                                    and _target_key(r) == target and r.get('study', 'main') == 'main'
                                    and not r.get('tag')] for method in ('oracle', BASELINE))
            check_one_version(oracle)
            check_one_version(source_only)
            for metric in ('iou', 'dice'):
                row[(TARGET_NAMES[target], metric.capitalize() if metric == 'dice' else 'IoU')] = \
                    _cell(_values(oracle, 'target_test', metric))
            row[(TARGET_NAMES[target], 'IoU − Source Only')] = _delta_cell(
                paired_delta(oracle, source_only, 'target_test') if oracle and source_only else None)
        rows[NET_NAMES[net]] = row
    return pd.DataFrame.from_dict(rows, orient='index')


def table2_cells(records: list[dict], criterion: str = 'target_all'):
    """Each Table 2 cell as (method, target, net, chosen records, chosen tag, every record of the cell)."""
    for method in TABLE2_METHODS:
        for target in TARGET_NAMES:
            for net in ('unet', 'deeplabv3plus'):
                cell = [r for r in records if r['method'] == method and r['net'] == net
                        and _target_key(r) == target and r.get('study', 'main') == 'main']
                check_one_version(cell)
                chosen, tag = select(cell, 'target_all', criterion)
                yield method, target, net, chosen, tag, cell


def chosen_grid_points(records: list[dict], criterion: str = 'target_all') -> dict:
    """(method name, target name, net name) -> the grid point Table 2 shows, for each cell with a grid."""
    return {(METHOD_NAMES[method], TARGET_NAMES[target], NET_NAMES[net]): tag or default_point_name(chosen[0].get('config') or {})
            for method, target, net, chosen, tag, cell in table2_cells(records, criterion) if len(_by_tag(cell)) > 1}


def table2(records: list[dict], criterion: str = 'target_all') -> tuple[pd.DataFrame, list[str]]:
    """Seed 002 Table 2: UDA on the whole target set, UNet and DeepLabv3+, IoU and Dice."""
    rows, notes = defaultdict(dict), []
    for method, target, net, chosen, tag, cell in table2_cells(records, criterion):
        points = len(_by_tag(cell))
        if points > 1:
            notes.append(f'{METHOD_NAMES[method]}, {TARGET_NAMES[target]}, {NET_NAMES[net]}: best of '
                         f'{points} grid points by mean IoU on {criterion}: '
                         f'{tag or default_point_name(chosen[0].get("config") or {})}')
        for metric in ('iou', 'dice'):
            rows[METHOD_NAMES[method]][(TARGET_NAMES[target], NET_NAMES[net], 'IoU' if metric == 'iou' else 'Dice')] = \
                _cell(_values(chosen, 'target_all', metric))
    rows = {m: row for m, row in rows.items() if any(v != MISSING for v in row.values())}
    frame = pd.DataFrame.from_dict(rows, orient='index')
    if not frame.empty:
        frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    return frame, notes


def grid_table(records: list[dict], criterion: str = 'target_all') -> pd.DataFrame:
    """Seed 000 §2.2's grids in full: for every Table 2 cell with several points, each point's target
    IoU (mean ± std over seeds), its paired difference to the default configuration on the same seed
    (95 % t interval) and an x at the point Table 2 shows (best mean IoU on ``criterion``)."""
    rows, methods, default_point = defaultdict(dict), [], defaultdict(lambda: 'default')
    for method, target, net, chosen, tag, cell in table2_cells(records, criterion):
        points = _by_tag(cell)
        if len(points) < 2:
            continue
        methods += [method] if method not in methods else []
        where = f'{TARGET_NAMES[target]} {NET_NAMES[net]}'
        if '' in points:
            default_point[method] = default_point_name(points[''][0].get('config') or {})
        for point, runs in points.items():
            row = rows[(method, point)]
            row[f'{where} IoU'] = _cell(_values(runs, 'target_all', 'iou'))
            row[f'{where} − default'] = _delta_cell(paired_delta(runs, points.get('', []))) if point else ''
            row[f'{where} chosen'] = 'x' if point == tag else ''
    order = sorted(rows, key=lambda key: (methods.index(key[0]), key[1] != '', key[1]))
    frame = pd.DataFrame([{'method': METHOD_NAMES[m], 'point': p or default_point[m], **rows[(m, p)]} for m, p in order])
    return frame.fillna(MISSING)


def default_point_name(config: dict) -> str:
    """'default', with the grid point it is in parentheses where the default configuration is one of
    the declared grid's points (the sweep then makes it once, untagged: ``sweep.expand``)."""
    from .runner import point_tag
    grid, values = config.get('grid') or {}, _flat(config)
    if grid and all(key in values and values[key] in choices for key, choices in grid.items()):
        return f"default ({point_tag({key: values[key] for key in grid})})"
    return 'default'


BASELINE = 'source_only'
#: Tag of the fine-tuning control in the ``controls`` study: the method with every target weight 0,
#: same method, target, net and seed as the run it is read against.
FINETUNE_TAG = 'finetune'


def delta_table(records: list[dict], criterion: str = 'target_all',
                finetune_tag: str = FINETUNE_TAG) -> tuple[pd.DataFrame, list[str]]:
    """Beside Table 2: per method and cell, the paired target-IoU difference to Source Only (same
    seed, same Source Only network) with its 95 % t interval; and, where the ``controls`` study holds
    the method's fine-tuning control (tag ``finetune_tag``), the same against that control."""
    cells = list(table2_cells(records, criterion))
    baseline = {(t, n): chosen for m, t, n, chosen, _, _ in cells if m == BASELINE}
    controls = [r for r in records if r.get('study') == 'controls' and r.get('tag') == finetune_tag]
    rows, notes, unpaired = defaultdict(dict), [], []
    for method, target, net, chosen, tag, _ in cells:
        if method == BASELINE or not chosen:
            continue
        where = (TARGET_NAMES[target], NET_NAMES[net])
        rows[METHOD_NAMES[method]][(*where, 'vs Source Only')] = _delta_cell(
            paired_delta(chosen, baseline[(target, net)]))
        control = [r for r in controls if r['method'] == method and r['net'] == net and _target_key(r) == target]
        if control:
            check_one_version(control)
            own = is_control_of(chosen[0], control[0])
            rows[METHOD_NAMES[method]][(*where, 'vs fine-tuning')] = (
                _delta_cell(paired_delta(chosen, control)) if own else MISSING)
            if not own:
                unpaired.append(f'{METHOD_NAMES[method]}, {", ".join(where)}: the chosen grid point {tag} changes more '
                                'than the target weights, so the fine-tuning control (of the default configuration) '
                                'is not its own: not paired.')
    frame = pd.DataFrame.from_dict(rows, orient='index')
    if not frame.empty:
        frame = frame.fillna(MISSING)
        frame.columns = pd.MultiIndex.from_tuples(frame.columns)
        frame = frame[sorted(frame.columns, key=lambda c: (list(TARGET_NAMES.values()).index(c[0]),
                                                           c[1] != 'UNet', c[2] != 'vs Source Only'))]
        notes.append('Each cell: mean over seeds of (method − reference) with the same seed, [95 % interval, '
                     'Student t over seeds, n − 1 degrees of freedom], ' + SIGNIFICANT + ' where the interval '
                     'excludes 0; n shown when below 3; the grid point is the one Table 2 shows.')
        if not controls:
            notes.append(f'No fine-tuning control (study controls, tag {finetune_tag}) among the result files.')
    return frame, notes + unpaired


POSITIVE_TAGS = ('positive_f0.2', 'positive_f1.0')


def headline(target: str) -> tuple[str, str]:
    """(split, metric) a target's rows are read by: skin IoU on the whole target (seed 002 §5.3),
    urban mIoU-16 on the held-out split (Table 3)."""
    return ('target_test', 'miou16') if target == URBAN_TARGET else ('target_all', 'iou')


def controls_table(records: list[dict], finetune_tag: str = FINETUNE_TAG,
                   positive_tags: tuple = POSITIVE_TAGS) -> pd.DataFrame:
    """The controls study (issue 11): per method, net and target, target IoU of the method's main run,
    its fine-tuning control (every target weight 0) and its positive controls (target weights x100
    at target fractions 0.2 and 1.0), mean ± std over seeds; and the paired difference of each
    positive control to the fine-tuning control (does the target reach the network?) and of the
    main run to it (what the method's own target losses add), with 95 % t intervals."""
    controls = [r for r in records if r.get('study') == 'controls']
    main = [r for r in records if r.get('study', 'main') == 'main' and not r.get('tag')]
    rows = {}
    for method, net, target in sorted({(r['method'], r['net'], _target_key(r)) for r in controls}):
        def runs(pool, tag=None):
            return [r for r in pool if (r['method'], r['net'], _target_key(r)) == (method, net, target)
                    and (tag is None or r.get('tag') == tag)]
        finetune, own = runs(controls, finetune_tag), runs(main)
        split, metric = headline(target)
        row = {'method run': _cell(_values(own, split, metric)),
               'fine-tuning': _cell(_values(finetune, split, metric))}
        for tag in positive_tags:
            row[tag] = _cell(_values(runs(controls, tag), split, metric))
        for tag in positive_tags:
            row[f'{tag} − fine-tuning'] = _delta_cell(paired_delta(runs(controls, tag), finetune, split, metric)
                                                      if finetune else None)
        row['method run − fine-tuning'] = _delta_cell(paired_delta(own, finetune, split, metric)
                                                      if finetune and own else None)
        rows[(METHOD_NAMES.get(method, method), NET_NAMES.get(net, net), TARGET_NAMES.get(target, target))] = row
    frame = pd.DataFrame.from_dict(rows, orient='index')
    if not frame.empty:
        frame.index = pd.MultiIndex.from_tuples(frame.index, names=['method', 'net', 'target'])
    return frame


def render(frame: pd.DataFrame, caption: str, notes: list[str] = ()) -> tuple[str, str]:
    """(Markdown, LaTeX) of ``frame`` with ``caption`` and notes."""
    if frame.empty:
        return f'_{caption}: no result files._\n', f'% {caption}: no result files.\n'
    flat = frame.copy()
    if isinstance(flat.columns, pd.MultiIndex):
        flat.columns = [' '.join(c) for c in flat.columns]
    if isinstance(flat.index, pd.MultiIndex):       # one column per level, not a tuple per row
        flat = flat.reset_index()
    plain_index = isinstance(flat.index, pd.RangeIndex)
    md = (f'**{caption}**\n\n' + flat.to_markdown(index=not plain_index, disable_numparse=True) + '\n' + ''.join(f'\n- {n}' for n in notes) + '\n')
    tex = frame.to_latex(caption=caption, escape=True, multicolumn=True, multicolumn_format='c', index=not plain_index)
    if notes:
        tex += ''.join(f'% {n}\n' for n in notes)
    return md, tex


def markdown_rows(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """A Markdown table of ``rows``: one column per (header, key, format spec); text columns
    (empty spec) left-aligned, numbers right-aligned. For the benchmarks' printed figures."""
    lines = ['| ' + ' | '.join(header for header, _, _ in columns) + ' |',
             '|' + '|'.join(':--' if not spec else '--:' for _, _, spec in columns) + '|']
    lines += ['| ' + ' | '.join(format(row[key], spec) for _, key, spec in columns) + ' |' for row in rows]
    return '\n'.join(lines)


ABLATION_KEYS = (('Edge', 'method.vae.edge_skip'), ('L_p', 'method.perceptual'),
                 ('LS', 'method.latent_search.enabled'))


ABLATION_FULL = (True, True, True)


def _ablation_runs(records: list[dict], target: str, point: tuple) -> list[dict]:
    """The DeepLabv3+ ``glss_ablation`` runs on ``target`` at ``point`` = (edge, L_p, LS)."""
    return [r for r in records if r['method'] == 'glss_ablation' and r['net'] == 'deeplabv3plus'
            and _target_key(r) == target and all(r['overrides'].get(k) == on for (_, k), on in zip(ABLATION_KEYS, point))]


def table4(records: list[dict]) -> pd.DataFrame:
    """Seed 002 Table 4: GLSS ablation (edge skip, L_p, latent search), DeepLabv3+, target IoU; beside
    each reduced model its paired difference to the full one (same seed, 95 % t interval)."""
    rows = []
    for point in itertools.product((False, True), repeat=3):
        row = {name: 'x' if on else '' for (name, _), on in zip(ABLATION_KEYS, point)}
        for target, title in TARGET_NAMES.items():
            cell = _ablation_runs(records, target, point)
            row[f'{title} IoU'] = _cell(_values(cell, 'target_all', 'iou'))
            full = _ablation_runs(records, target, ABLATION_FULL)
            row[f'{title} − full'] = ('' if point == ABLATION_FULL
                                      else _delta_cell(paired_delta(cell, full) if cell and full else None))
        rows.append(row)
    return pd.DataFrame(rows)


LS_LOSSES = ('ssim', 'mse', 'mae')


def fig5_table(records: list[dict]) -> pd.DataFrame:
    """Seed 002 Fig. 5 as numbers: per target and latent-search iteration, the target IoU of each LS
    objective (DeepLabv3+, mean ± std over seeds) and the paired differences SSIM − MSE and SSIM − MAE
    (``ls_paired_differences``: same seed, so the same VAE and segmentation network; 95 % t intervals)."""
    runs = [r for r in records if r['method'] == 'glss_ls_study' and r['net'] == 'deeplabv3plus']
    for target in TARGET_NAMES:
        for loss in LS_LOSSES:
            check_one_version([r for r in runs if _target_key(r) == target
                               and r['config']['method']['latent_search']['loss'] == loss])
    curves = ls_curves(runs)
    rows = defaultdict(dict)
    for (target, loss, step), by_seed in curves.groupby(['target', 'loss', 'iteration']):
        rows[step][(TARGET_NAMES[target], loss.upper())] = _cell(list(by_seed.sort_values('seed')['iou']))
    for d in ls_paired_differences(curves).itertuples():
        interval = dict(n=d.n, mean=d.mean, low=None if pd.isna(d.low) else d.low,
                        high=None if pd.isna(d.high) else d.high, per_seed=d.per_seed)
        rows[d.iteration][(TARGET_NAMES[d.target], f'SSIM − {d.other.upper()}')] = _delta_cell(interval)
    columns = [(title, name) for title in TARGET_NAMES.values()
               for name in [loss.upper() for loss in LS_LOSSES] + [f'SSIM − {o.upper()}' for o in LS_LOSSES[1:]]]
    frame = pd.DataFrame.from_dict(rows, orient='index')
    if frame.empty:
        return frame
    frame = frame[[c for c in columns if c in frame.columns]].sort_index()
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    frame.index.name = 'LS iteration'
    return frame.fillna(MISSING)


def ls_curves(records: list[dict]) -> pd.DataFrame:
    """Seed 002 Fig. 5: target IoU against latent-search iteration for each LS objective (long format)."""
    rows = []
    for r in records:
        if r['method'] != 'glss_ls_study':
            continue
        for step, m in r['metrics'].get('trace', {}).items():
            rows.append(dict(target=_target_key(r), net=r['net'], loss=r['config']['method']['latent_search']['loss'],
                             seed=r['seed'], iteration=int(step.split('_')[1]), iou=m['iou'], dice=m['dice']))
    return pd.DataFrame(rows, columns=['target', 'net', 'loss', 'seed', 'iteration', 'iou', 'dice'])


def ls_paired_differences(curves: pd.DataFrame) -> pd.DataFrame:
    """Per target, net, other objective (MSE, MAE) and LS iteration: SSIM minus it on the same seed,
    as ``t_interval``'s n, mean, low, high, per_seed (seeds that have both runs only)."""
    rows = []
    for (target, net), sub in curves.groupby(['target', 'net']):
        wide = sub.pivot_table(index=['seed', 'iteration'], columns='loss', values='iou')
        for other in (loss for loss in LS_LOSSES[1:] if {'ssim', loss} <= set(wide.columns)):
            diffs = (wide['ssim'] - wide[other]).dropna()
            for step, by_seed in diffs.groupby(level='iteration'):
                rows.append(dict(target=target, net=net, other=other, iteration=step,
                                 **t_interval(list(by_seed), list(by_seed.index.get_level_values('seed')))))
    return pd.DataFrame(rows, columns=['target', 'net', 'other', 'iteration', 'n', 'mean', 'low', 'high', 'per_seed'])


def plot_ls_curves(curves: pd.DataFrame, path, title: str) -> None:
    """Seed 002 Fig. 5, one column per target. Top: IoU vs LS iteration per objective, mean over seeds
    with a ± std band. Bottom: SSIM minus MSE / MAE paired per seed (same VAE and network), mean with
    its 95 % Student-t band: the spread between seeds is larger than the objectives' differences, so
    only the paired panel can show whether one objective beats another."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    targets = sorted(curves['target'].unique())
    fig, axes = plt.subplots(2, len(targets), figsize=(5 * len(targets), 6.4), squeeze=False, sharex=True)
    for column, target in enumerate(targets):
        sub = curves[curves['target'] == target]
        top, bottom = axes[0][column], axes[1][column]
        for (loss, net), g in sub.groupby(['loss', 'net']):
            by_step = g.groupby('iteration')['iou']
            mean, std, n = by_step.mean(), by_step.std(ddof=1).fillna(0.0), by_step.size().max()
            line, = top.plot(mean.index, mean.values, marker='o', ms=3,
                             label=f'{loss.upper()} ({NET_NAMES.get(net, net)}, n={n})')
            top.fill_between(mean.index, mean - std, mean + std, color=line.get_color(), alpha=0.12)
        for (other, net), band in ls_paired_differences(sub).groupby(['other', 'net'], sort=False):
            line, = bottom.plot(band['iteration'], band['mean'], marker='o', ms=3,
                                label=f'SSIM − {other.upper()} ({NET_NAMES.get(net, net)})')
            if band['low'].notna().all():
                bottom.fill_between(band['iteration'], band['low'], band['high'], color=line.get_color(), alpha=0.15)
        bottom.axhline(0.0, color='grey', lw=0.8)
        top.set_title(TARGET_NAMES.get(target, target))
        top.set_ylabel('target IoU (mean ± std)')
        bottom.set_ylabel('paired IoU difference (95 % t)')
        bottom.set_xlabel('latent-search iteration')
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


FRACTION_METHODS = ('adaptsegnet', 'bdl', 'clan', 'advent', 'dada', 'glss')
FRACTION_REFERENCE = 'Table 2 run'


def fraction_table(records: list[dict]) -> pd.DataFrame:
    """Seed 000 Table 1: target IoU when the method trains with 60 / 40 / 20 % of the target data
    (GLSS: its VAE on source plus that fraction), whole target set, per target and network.

    Each block has a reference row from the Table 2 run of the same default configuration
    (``FRACTION_REFERENCE``): the baselines with all of the target, GLSS with none of it; then each
    fraction minus that run on the same seed (paired, 95 % t interval).
    """
    study = [r for r in records if r.get('study') == 'fraction']
    main = [r for r in records if r.get('study', 'main') == 'main' and not r.get('tag')]
    rows = {}
    for target, net in sorted({(_target_key(r), r['net']) for r in study}):
        blocks = [(f'{int(f * 100)} %', [r for r in study if r['config']['method'].get('target_fraction') == f])
                  for f in (0.6, 0.4, 0.2)] + [(FRACTION_REFERENCE, main)]
        runs = {label: {m: [r for r in pool if r['method'] == m and _target_key(r) == target and r['net'] == net]
                        for m in FRACTION_METHODS} for label, pool in blocks}
        key = (TARGET_NAMES[target], NET_NAMES.get(net, net))
        for label, by_method in runs.items():
            rows[(*key, label)] = {METHOD_NAMES[m]: _cell(_values(cell, 'target_all', 'iou'))
                                   for m, cell in by_method.items()}
        for label, by_method in list(runs.items())[:-1]:
            rows[(*key, f'{label} − {FRACTION_REFERENCE}')] = {
                METHOD_NAMES[m]: _delta_cell(paired_delta(cell, runs[FRACTION_REFERENCE][m]))
                for m, cell in by_method.items()}
    frame = pd.DataFrame.from_dict(rows, orient='index')
    if not frame.empty:
        frame.index = pd.MultiIndex.from_tuples(frame.index, names=['target', 'net', 'target data'])
    return frame


def seed_table(records: list[dict]) -> pd.DataFrame:
    """Seed spread of one configuration: mean ± std and [min, max] over seeds of each target's headline
    metric (skin: IoU on the whole target; urban: held-out mIoU-16), for Table 2's default Source Only
    runs (study ``main``) and any ``--study seeds`` runs (e.g. more seeds than the plan's three), one
    row per method, net and study."""
    cells: dict[tuple, dict[str, list]] = {}   # (method, net, study) -> target -> records
    for r in records:
        study = r.get('study', 'main')
        if study == 'seeds' or (study == 'main' and r['method'] == 'source_only' and not r.get('tag')):
            cells.setdefault((r['method'], r['net'], study), {}).setdefault(_target_key(r), []).append(r)
    targets = sorted({target for by_target in cells.values() for target in by_target})
    rows = {}
    for (method, net, study), by_target in sorted(cells.items()):
        row = {}
        for target in targets:
            vals = _values(by_target.get(target, []), *headline(target))
            ok = [v for v in vals if not np.isnan(v)]
            row[f'{TARGET_NAMES.get(target, target)} {"mIoU-16" if target == URBAN_TARGET else "IoU"}'] = (
                _cell(vals) + (f' [{min(ok):.3f}, {max(ok):.3f}]' if len(ok) > 1 else ''))
        rows[(METHOD_NAMES.get(method, method), NET_NAMES.get(net, net), study)] = row
    frame = pd.DataFrame.from_dict(rows, orient='index')
    if not frame.empty:
        frame.index = pd.MultiIndex.from_tuples(frame.index, names=['method', 'net', 'study'])
    return frame


GAN_VS_VAE = (('glss_gan', 'GAN (glss_gan)'), ('glss', 'VAE (glss)'))


def gan_vs_vae_table(records: list[dict]) -> pd.DataFrame:
    """Seed 000 Table 2 (§2.5): GLSS target IoU with a GAN generator vs the VAE, per network that has
    ``glss_gan`` runs, and the Fréchet distance of each model's samples to the source images (one
    value per seed, the same in the SNV and the Hand Gesture run; mean ± std over seeds)."""
    main = [r for r in records if r.get('study', 'main') == 'main' and not r.get('tag')]
    rows = {}
    for net in sorted({r['net'] for r in main if r['method'] == 'glss_gan'}):
        for method, label in GAN_VS_VAE:
            runs = [r for r in main if r['method'] == method and r['net'] == net]
            row = {f'{title} IoU': _cell(_values([r for r in runs if _target_key(r) == target], 'target_all', 'iou'))
                   for target, title in TARGET_NAMES.items()}
            per_seed = {r['seed']: r['frechet_distance']['value'] for r in runs if 'frechet_distance' in r}
            row['Fréchet distance to source'] = _cell([per_seed[s] for s in sorted(per_seed)])
            rows[(NET_NAMES.get(net, net), label)] = row
        (gan, _), (vae, _) = GAN_VS_VAE
        rows[(NET_NAMES.get(net, net), 'GAN − VAE (paired, 95 % t)')] = {
            f'{title} IoU': _delta_cell(paired_delta(*([r for r in main if r['method'] == m and r['net'] == net
                                                          and _target_key(r) == target] for m in (gan, vae))))
            for target, title in TARGET_NAMES.items()} | {'Fréchet distance to source': ''}
    frame = pd.DataFrame.from_dict(rows, orient='index')
    if not frame.empty:
        frame.index = pd.MultiIndex.from_tuples(frame.index, names=['net', 'generative model'])
    return frame


#: seed 002 Table 3 (SYNTHIA -> Cityscapes, mIoU-13 / mIoU-16, %), as published: a labelled block of its own.
PUBLISHED_TABLE3 = {'adaptsegnet': (46.7, None), 'advent': (48.0, 41.2), 'bdl': (51.4, None), 'clan': (47.8, None),
                    'dise': (48.8, 41.5), 'dada': (49.8, 42.6), 'glss': (52.3, 44.5),
                    'depth_distribution': (55.5, 48.2)}   # seed 004 Table 1 (its mIoU* / mIoU)
URBAN_METHODS = TABLE2_METHODS + ('oracle',)


def _urban_cells(records: list[dict]):
    """Each Table 3 cell as (method, net, records) for the runs on the urban target."""
    for method in URBAN_METHODS:
        for net in NET_NAMES:
            cell = [r for r in records if r['method'] == method and r['net'] == net
                    and _target_key(r) == URBAN_TARGET and r.get('study', 'main') == 'main']
            if cell:
                yield method, net, cell


def table3(records: list[dict]) -> pd.DataFrame:
    """Seed 002 Table 3: SYNTHIA -> Cityscapes, mIoU-13 and mIoU-16 on the held-out target split
    (``target_test``: images no method trained on, as Cityscapes val)."""
    rows = defaultdict(dict)
    for method, net, cell in _urban_cells(records):
        for metric, title in (('miou13', 'mIoU-13'), ('miou16', 'mIoU-16')):
            rows[METHOD_NAMES[method]][(NET_NAMES[net], title)] = _cell(
                [v for v in _values(cell, 'target_test', metric) if v is not None])
    return pd.DataFrame.from_dict(rows, orient='index')


def table3_deltas(records: list[dict]) -> pd.DataFrame:
    """Per Table 3 cell, the paired difference (same seed) of mIoU-13 and mIoU-16 to Source Only on
    the held-out target split, with 95 % Student-t intervals."""
    cells = {(method, net): cell for method, net, cell in _urban_cells(records)}
    rows = defaultdict(dict)
    for (method, net), cell in cells.items():
        reference = cells.get(('source_only', net))
        if method == 'source_only' or reference is None:
            continue
        check_one_version(cell)
        check_one_version(reference)
        for metric, title in (('miou13', 'mIoU-13'), ('miou16', 'mIoU-16')):
            rows[METHOD_NAMES[method]][(NET_NAMES[net], f'{title} − Source Only')] = _delta_cell(
                paired_delta(cell, reference, 'target_test', metric))
    return pd.DataFrame.from_dict(rows, orient='index')


def table3_classes(records: list[dict]) -> pd.DataFrame:
    """Per-class IoU of every Table 3 cell on the held-out target split (16 classes of mIoU-16)."""
    from .tasks import TASKS, URBAN_16
    names = TASKS['urban']['evaluator']['class_names']
    rows = {}
    for method, net, cell in _urban_cells(records):
        rows[(METHOD_NAMES[method], NET_NAMES[net])] = {
            names[c]: _cell([v for v in _values(cell, 'target_test', f'iou_{names[c]}') if v is not None])
            for c in URBAN_16}
    frame = pd.DataFrame.from_dict(rows, orient='index')
    if not frame.empty:
        frame.index.names = ['method', 'net']
    return frame


def table3_published(records: list[dict]) -> pd.DataFrame:
    """The published Table 3 beside ours (empty when no urban run is there to set it beside)."""
    if not any(True for _ in _urban_cells(records)):
        return pd.DataFrame()
    return pd.DataFrame.from_dict({METHOD_NAMES[m]: {'mIoU-13': f'{a:.1f}', 'mIoU-16': MISSING if b is None else f'{b:.1f}'}
                                   for m, (a, b) in PUBLISHED_TABLE3.items()}, orient='index')


def _row_label(row: pd.Series, keys: list[str], flags: set[str]) -> str:
    """A table row named by its key cells: a flag column (cells 'x' or '') by its name or 'no <name>',
    a number by its column and value, text as it stands."""
    def part(column):
        value = row[column]
        if column in flags:
            return column if value == 'x' else f'no {column}'
        return f'{column} {value}' if value.isdigit() else value
    return ', '.join(part(c) for c in keys)


def _is_value(cell: str) -> bool:
    """A cell that holds a result: a paired difference, a mean (± std), or one missing or failed."""
    return bool(parse_delta_cell(cell) or re.match(r'\d+\.\d', cell) or cell in (MISSING, FAILED))


def paired_findings(frame: pd.DataFrame) -> dict:
    """Every paired-difference cell of a built table: (row label, column label) -> its text. The row is
    named by its leading label columns (the index among them), those before the first column of values."""
    flat = frame.copy()
    if isinstance(flat.columns, pd.MultiIndex):
        flat.columns = [' '.join(c) for c in flat.columns]
    if not isinstance(flat.index, pd.RangeIndex):
        flat = flat.reset_index()
    flat = flat.astype(str)
    values = [any(map(_is_value, flat[c])) for c in flat.columns]
    keys = list(flat.columns[:values.index(True)]) if True in values else list(flat.columns)
    flags = {c for c in keys if set(flat[c]) <= {'x', ''}}
    return {(_row_label(row, keys, flags), column): row[column] for _, row in flat.iterrows()
            for column in flat.columns if column not in keys and parse_delta_cell(row[column])}


def replication_verdict(reference: dict, replicate: dict, reference_name: str, replicate_name: str) -> str:
    """Whether a paired difference holds in a replicate (another CPU kind, say): 'holds' (both
    intervals exclude 0, on one side), 'reversed' (both exclude it, on opposite sides), 'unresolved on
    both', 'resolved on <name> only' (with ', opposite sign' where the means disagree in sign)."""
    if reference['low'] is None or replicate['low'] is None:
        return 'fewer than 2 seeds'
    same_sign = (reference['mean'] >= 0) == (replicate['mean'] >= 0)
    if reference['resolved'] and replicate['resolved']:
        return 'holds' if same_sign else 'reversed'
    if not (reference['resolved'] or replicate['resolved']):
        return 'unresolved on both'
    only = reference_name if reference['resolved'] else replicate_name
    return f'resolved on {only} only' + ('' if same_sign else ', opposite sign')


def replication_table(reference: dict, replicate: dict, reference_name: str, replicate_name: str) -> pd.DataFrame:
    """Each paired difference of the replicate's tables (name -> frame) beside the same cell of the
    reference's, with ``replication_verdict``: one row per difference present in both."""
    rows = []
    for name in [n for n in replicate if n in reference]:
        theirs = paired_findings(reference[name])
        for (finding, difference), text in paired_findings(replicate[name]).items():
            if (finding, difference) in theirs:
                other = theirs[(finding, difference)]
                rows.append({'table': name, 'finding': finding, 'difference': difference, reference_name: other,
                             replicate_name: text, 'verdict': replication_verdict(
                                 parse_delta_cell(other), parse_delta_cell(text), reference_name, replicate_name)})
    return pd.DataFrame(rows)


def build_all(records: list[dict], where: str, criterion: str = 'target_all') -> tuple[dict, dict]:
    """Every table of one (profile, data source) group: (name -> (frame, caption, notes), name -> the
    error that refused it). A refused table (a cell mixing code versions, configs or CPU kinds; a
    pair across CPU kinds) does not stop the others."""
    stat = 'mean ± std over seeds, n shown when below 3'
    starred = ['* where the interval excludes 0.']

    def table2_with_notes():
        frame, notes = table2(records, criterion)
        return frame, f'Table 2: UDA, IoU and Dice on the whole target set, {stat} ({where})', notes

    def deltas_with_notes():
        frame, notes = delta_table(records, criterion)
        return (frame, 'Table 2, paired differences: target IoU of each method minus Source Only (and minus its '
                'fine-tuning control) on the same seed, with 95 % Student-t intervals over seeds '
                f'({where})', [*notes, CPU_NOTE])

    specs = {
        'table1': lambda: (table1(records), f'Table 1: supervised on target, 80/20 split, {stat}, and the oracle '
                           'minus Source Only on the same 20 % test part and seed with 95 % Student-t intervals '
                           f'({where})', starred),
        'table2': table2_with_notes,
        'table2_deltas': deltas_with_notes,
        'grids': lambda: (grid_table(records, criterion), 'Grids (seed 000 §2.2): target IoU of every declared point, '
                          f'{stat}, and its paired difference to the default configuration with 95 % Student-t '
                          f'intervals ({where})', ['chosen: the point Table 2 shows (best mean target IoU on '
                                                   f'{criterion}); ' + starred[0], CPU_NOTE]),
        'table4': lambda: (table4(records), f'Table 4: GLSS ablation, DeepLabv3+, target IoU, {stat}, and each '
                           'reduced model minus the full one on the same seed with 95 % Student-t intervals '
                           f'({where})', starred),
        'fig5': lambda: (fig5_table(records), 'Fig. 5 as numbers: target IoU every 10 latent-search iterations per '
                         f'objective (DeepLabv3+), {stat}, and SSIM minus MSE / MAE on the same seed with 95 % '
                         f'Student-t intervals ({where})', starred),
        'target_fraction': lambda: (
            fraction_table(records), f'Supplement Table 1: target IoU vs fraction of target data used in training, '
            f'{stat} ({where})', [f'{FRACTION_REFERENCE}: the untagged Table 2 run of the same default configuration, '
                                  'with 100 % of the target for the baselines and 0 % for GLSS (VAE on the source '
                                  'only); "x % − Table 2 run": paired per seed, 95 % Student-t interval, * where it '
                                  'excludes 0.', CPU_NOTE]),
        'controls': lambda: (
            controls_table(records), f'Controls: target IoU, {stat}, and paired differences to the fine-tuning '
            f'control with 95 % Student-t intervals ({where})',
            ['cityscapes rows: mIoU-16 on the held-out target split, as Table 3. fine-tuning: every target weight 0 '
             '(BatchNorm statistics still see the target batches; BDL\'s source images are still translated; '
             'DISE\'s translations do not reach the network); '
             'positive_f<x>: every target weight x100, training on the fraction x of the target; * where the '
             'interval excludes 0.']),
        'table3': lambda: (table3(records), 'Table 3: SYNTHIA -> Cityscapes, mIoU-13 / mIoU-16 on the held-out '
                           f'target split, {stat} ({where})', []),
        'table3_deltas': lambda: (table3_deltas(records), 'Table 3, paired differences: mIoU of each method minus '
                                  'Source Only on the same seed, held-out target split, with 95 % Student-t '
                                  f'intervals over seeds ({where})', [*starred, CPU_NOTE]),
        'table3_classes': lambda: (table3_classes(records), 'Table 3, per class: IoU on the held-out target split, '
                                   f'{stat} ({where})', []),
        'table3_published': lambda: (table3_published(records), 'Table 3 as published (seed 002; depth distribution: '
                                     'seed 004 Table 1; %; real SYNTHIA -> Cityscapes val): NOT made by this suite, '
                                     'for reference only', []),
        'seed_spread': lambda: (seed_table(records), "Seed spread: each target's headline metric over seeds, "
                                f'same configuration ({where})',
                                ["main: Table 2's Source Only runs; seeds: `--study seeds` runs."]),
        'gan_vs_vae': lambda: (
            gan_vs_vae_table(records), f'Supplement Table 2: GLSS with a GAN vs the VAE, target IoU ({where})',
            ["Fréchet distance: prior samples vs real source images on the Source Only network's backbone features "
             '(global-average-pooled deepest map), not Inception: an FID-like number comparable only within a '
             "network. VAE samples use the real images' edges."]),
    }
    built, refused = {}, {}
    for name, make in specs.items():
        try:
            built[name] = make()
        except ValueError as err:          # e.g. a cell mixing code versions
            refused[name] = str(err)
    return built, refused
