#!/usr/bin/env bash
# Every `cpu`-profile run behind the README's tables, in one command (synthetic twins unless the
# real sets are under data/real/). Finished runs are skipped, interrupted ones resume.
#   bash tools/reproduce_cpu.sh [--quick]   (--quick: Tables 1-2 only, no studies)
# The committed results were made with one thread per run (two runs side by side); a run repeats
# bit for bit with the same thread count, while another count changes summation order.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
R="python3 tools/run_benchmark.py --profile cpu --no-progress"
for net in unet deeplabv3plus fpn linknet pspnet; do for t in hand snv; do $R --method oracle --target $t --net $net; done; done
for net in deeplabv3plus unet; do
  for t in hand snv; do
    for m in source_only adaptsegnet advent clan dada glss bdl dise; do $R --method $m --target $t --net $net; done
  done
done
if [ "${1:-}" != "--quick" ]; then
  for net in deeplabv3plus unet; do for t in hand snv; do
    $R --method source_only --target $t --net $net --seed 0 1 2 --study seeds
  done; done
  for t in hand snv; do
    $R --method glss_ls_study --grid --study ls_iterations --target $t
    $R --method glss_ablation --grid --study ablation --target $t
    $R --method adaptsegnet --grid --target $t
  done
  for net in deeplabv3plus unet; do for t in hand snv; do   # fine-tuning and positive controls (issue 11)
    for m in adaptsegnet advent minent clan dada bdl dise; do $R --method $m --target $t --net $net --study controls; done
  done; done
  for f in 0.6 0.4 0.2; do   # seed 000 Table 1 (SNV)
    for m in adaptsegnet bdl clan advent dada glss; do
      $R --method $m --target snv --study fraction --set method.target_fraction=$f --tag f$f
    done
  done
fi
# Not in the committed tables (CPU time): the UNet grid of AdaptSegNet and the grids of BDL, DISE
# and DADA, e.g. $R --method dise --grid --target hand --net unet; Table 2 then takes the best point.
python3 tools/make_tables.py
