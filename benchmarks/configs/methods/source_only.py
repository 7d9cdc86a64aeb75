# Source Only (seed 002 Table 2): the segmentation network trained on the source alone.
method = dict(type='source_only')
