#!/usr/bin/env python
"""Render the paper's tables from result files as Markdown and LaTeX.

    python tools/make_tables.py [--results results/runs] [--out results/tables]

One folder per (profile, data source) under --out; every caption names its data source. Cells are
mean ± std over seeds; `table2_deltas` holds each method's paired difference to Source Only (and to
its fine-tuning control) with 95 % t intervals. A table with a cell mixing code versions, configs or
CPU kinds (or a pair across CPU kinds) is not written: the error names its files, the other tables are
written, and the exit status is 2.

    python tools/make_tables.py --results results/amd_epyc --out results/amd_epyc/tables --compare-with results/runs

also writes `replication.md`: every paired difference of these tables beside the same one computed from
the runs of the other folder at the same paths (made on another CPU kind, say), with whether it holds.
With --per-seed every paired difference also lists the difference on each seed, {seed: difference}.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from collections import Counter
from pathlib import Path

from udabench import tables
from udabench.results import load_results


def same_runs(reference: list[dict], reference_root, records: list[dict], root) -> list[dict]:
    """The reference's runs at the paths of ``records`` (relative to their folders): the same plan rows,
    so that both sides choose among the same grid points."""
    paths = {Path(r['_path']).relative_to(root) for r in records}
    return [r for r in reference if Path(r['_path']).relative_to(reference_root) in paths]


def write_replication(folder: Path, group: list[dict], built: dict, reference: list[dict], where: str,
                      args) -> None:
    """``replication.md``/``.tex``: this group's paired differences beside the same ones of the reference's
    runs (``--compare-with``), each with ``tables.replication_verdict``."""
    ours, theirs = (', '.join(sorted({tables.cpu_kind(r) for r in runs})) for runs in (group, reference))
    if ours == theirs:
        ours, theirs = args.results, args.compare_with
    reference_built, refused = tables.build_all(reference, where, args.select)
    frame = tables.replication_table({name: spec[0] for name, spec in reference_built.items()},
                                     {name: spec[0] for name, spec in built.items()}, theirs, ours)
    counts = Counter(frame['verdict']) if not frame.empty else Counter()
    caption = (f'Replication: each paired difference of these tables ({args.results}: {ours}) beside the same one from '
               f'the same runs in {args.compare_with} ({theirs}), 95 % Student-t intervals over seeds ({where})')
    notes = [f'{len(reference)} runs of {args.compare_with} at the paths of the {len(group)} here (the same plan rows, '
             'so both sides choose among the same grid points); each side pairs runs of its own CPU kind only.',
             'holds: both intervals exclude 0 on one side; reversed: on opposite sides; resolved on X only: the '
             "other's includes 0 (opposite sign: the means disagree in sign); unresolved on both: both include 0.",
             'Verdicts: ' + ', '.join(f'{n} {verdict}' for verdict, n in counts.most_common()) + '.']
    points = [tables.chosen_grid_points(runs, args.select) if 'table2' in made else {}     # else refused: noted below
              for runs, made in ((group, built), (reference, reference_built))]
    notes += [f'{", ".join(cell)}: Table 2 shows another grid point on each side ({ours}: {point}; {theirs}: '
              f'{points[1].get(cell, "none")}), so its rows compare different configurations.'
              for cell, point in points[0].items() if points[1].get(cell) != point]
    notes += [f'{name} of {args.compare_with} not compared: {err}' for name, err in refused.items()]
    md, tex = tables.render(frame, caption, notes + per_seed_note(args))
    if frame.empty:                          # render leaves notes out of an empty table; here they say why
        md += ''.join(f'\n- {n}' for n in notes) + '\n'
        tex += ''.join(f'% {n}\n' for n in notes)
    (folder / 'replication.md').write_text(md)
    (folder / 'replication.tex').write_text(tex)
    print(md)


def per_seed_note(args) -> list[str]:
    return [tables.PER_SEED_NOTE] if args.per_seed else []


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--results', default='results/runs', help='folder of result JSON files')
    parser.add_argument('--out', default='results/tables', help='where the tables are written')
    parser.add_argument('--select', default='target_all', choices=('target_all', 'target_test'),
                        help='split whose IoU picks the best grid point: target_all (the paper: the reported IoU itself) or target_test (the held-out 20 %% split)')
    parser.add_argument('--compare-with', metavar='DIR',
                        help='also write replication.md: each paired difference beside the same one from the runs of '
                             'DIR at the same paths (another CPU kind, say), with whether it holds')
    parser.add_argument('--per-seed', action='store_true',
                        help='every paired difference also lists its per-seed differences, {seed: difference}')
    args = parser.parse_args(argv)
    try:
        records = load_results(args.results)
        reference = same_runs(load_results(args.compare_with), args.compare_with, records, args.results) \
            if args.compare_with else []
    except ValueError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    if not records:
        print(f'error: no result files under {args.results}', file=sys.stderr)
        return 2
    if args.compare_with and not reference:
        print(f'error: --compare-with {args.compare_with}: no result files at the paths of those under {args.results} '
              '(expected a results folder of the same plan rows, e.g. results/runs)', file=sys.stderr)
        return 2
    with tables.per_seed_differences() if args.per_seed else contextlib.nullcontext():
        return write_tables(records, reference, args)


def write_tables(records: list[dict], reference: list[dict], args) -> int:
    """Every group's tables under ``args.out`` (and its replication against ``reference``); the exit status."""
    status = 0
    for (profile, source), group in sorted(tables.groups(records).items()):
        folder = Path(args.out) / f'{profile}_{source.split(" ")[0]}'
        where = f'profile {profile}, data: {source}'
        built, refused = tables.build_all(group, where, args.select)
        folder.mkdir(parents=True, exist_ok=True)
        for name, (frame, caption, notes) in built.items():
            md, tex = tables.render(frame, caption, notes + per_seed_note(args))
            (folder / f'{name}.md').write_text(md)
            (folder / f'{name}.tex').write_text(tex)
            print(md)
        for name, err in refused.items():   # its old file would be stale: removed, never left beside new ones
            for suffix in ('.md', '.tex'):
                (folder / f'{name}{suffix}').unlink(missing_ok=True)
            print(f'error: {where}: {name} not written: {err}', file=sys.stderr)
        status = status or (2 if refused else 0)
        if args.compare_with:
            write_replication(folder, group, built, tables.groups(reference).get((profile, source), []), where, args)
        curves = tables.ls_curves(group)
        if not curves.empty:
            curves.to_csv(folder / 'fig5_ls_iterations.csv', index=False)
            tables.plot_ls_curves(curves, folder / 'fig5_ls_iterations.png',
                                  f'Fig. 5: IoU vs latent-search iteration ({where})')
        print(f'written under {folder}')
    return status


if __name__ == '__main__':
    sys.exit(main())
