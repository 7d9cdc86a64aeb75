# A tiny plan for the tests and for trying the sweep: three `smoke` runs (seeds 0, 1, 2) of a few seconds each.
profile = 'smoke'
seeds = [0, 1, 2]
threads = 1
timeout_min = 10
groups = [dict(table='Table 2', methods=['source_only'], nets=['unet'], targets=['hand'])]
