"""The segmentation tasks of the suite: which source a target adapts from, its classes and its scores.

* ``skin`` (seed 002 Tables 1, 2, 4): COMPAQ's Red channel -> SNV / Hand Gesture NIR, one skin
  channel (``num_classes=1``: a sigmoid, the binary IoU and Dice of ``evaluation.BinarySegEvaluator``).
* ``urban`` (seed 002 Table 3): SYNTHIA -> Cityscapes, RGB, the 19 Cityscapes train ids with 255
  ignored, softmax over them, cross-entropy, mIoU-16 over SYNTHIA's 16 classes and mIoU-13 over those
  without wall, fence and pole (the standard subsets, ``../shared/notes/urban-data.md``).

The target names the task (``--target cityscapes`` adapts from ``synthia``). ``adapt_on`` says which
target images a method may train on: skin, as seed 002, all of them (its Table 2 scores the whole
target set, transductively); urban, as every Cityscapes UDA method, only the training split, so that
the held-out split (real Cityscapes: ``val``) is never seen, labelled or not.
"""
from __future__ import annotations

from udabench.datasets.urban import CLASSES

#: SYNTHIA's 16 classes (Cityscapes train ids) and the 13 without wall (3), fence (4) and pole (5).
URBAN_16 = (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18)
URBAN_13 = tuple(c for c in URBAN_16 if c not in (3, 4, 5))

TASKS = {
    'skin': dict(source='compaq', targets=('snv', 'hand'), num_classes=1, seg_loss=None,
                 evaluator=dict(type='binary'), headline='iou', adapt_on='all'),
    'urban': dict(source='synthia', targets=('cityscapes',), num_classes=len(CLASSES), seg_loss='cross_entropy',
                  evaluator=dict(type='multiclass', num_classes=len(CLASSES), ignore_index=255,
                                 class_subsets={'miou16': URBAN_16, 'miou13': URBAN_13},
                                 class_names=[c.replace(' ', '_') for c in CLASSES]),
                  headline='miou16', adapt_on='train'),
}
TARGETS = tuple(t for task in TASKS.values() for t in task['targets'])


def task_of(target: str) -> str:
    """The task of ``target`` (a public target name or its ``synth_`` twin)."""
    name = target.removeprefix('synth_')
    for task, spec in TASKS.items():
        if name in spec['targets']:
            return task
    raise KeyError(f'unknown target {target!r}; expected one of {TARGETS} (or synth_<target>)')
