#!/usr/bin/env python3
"""Detection recall and precision of `dust` against the truth masks of `nitrate degrade`.

Usage: benches/dust_detection.py SET MASKS
  SET    a set made by `nitrate degrade` (SET/mask/, SET/clean/, SET/degraded/)
  MASKS  the --emit-masks folder of the restore (MASKS/dust/NNNNNN.png, numbered like SET/mask)

Pixels: recall is the share of truth-mask pixels that the damage visibly changed (more than
2/255 in some plane) that lie in the repair mask (above 0); precision is the share of
repair-mask pixels inside the truth mask. Regions (8-connected, needs scipy): a truth region
is found when any of its visibly changed pixels is in the repair mask; a repair region is
false when it touches no truth pixel. Needs numpy and Pillow.
"""
import os
import sys

import numpy as np
from PIL import Image

if len(sys.argv) != 3:
    sys.exit(__doc__)
set_dir, masks = sys.argv[1:3]
names = sorted(n for n in os.listdir(f"{set_dir}/mask") if n.endswith(".png"))


def load(path, grey=True):
    im = Image.open(path)
    return np.asarray(im.convert("L") if grey else im.convert("RGB")).astype(np.int32)


try:
    from scipy import ndimage
except ImportError:
    ndimage = None
hit = truth_vis = rep = rep_in = 0
regions = false_regions = truth_regions = found = 0
for n in names:
    truth = load(f"{set_dir}/mask/{n}") > 0
    rep_mask = load(f"{masks}/dust/{n}") > 0
    # 8-bit views are enough to tell which truth pixels the damage visibly changed.
    diff = np.abs(load(f"{set_dir}/degraded/{n}", False) - load(f"{set_dir}/clean/{n}", False))
    vis = truth & (diff.max(-1) > 2)
    truth_vis += vis.sum()
    hit += (vis & rep_mask).sum()
    rep += rep_mask.sum()
    rep_in += (rep_mask & truth).sum()
    if ndimage is not None:
        eight = np.ones((3, 3))
        lab, k = ndimage.label(rep_mask, structure=eight)
        regions += k
        if k:
            false_regions += int((ndimage.maximum(truth, lab, range(1, k + 1)) == 0).sum())
        lab, k = ndimage.label(vis, structure=eight)
        truth_regions += k
        if k:
            found += int((ndimage.maximum(rep_mask, lab, range(1, k + 1)) > 0).sum())
print(f"pixels: recall {hit / max(truth_vis, 1):.3f} ({hit} of {truth_vis} visibly damaged), "
      f"precision {rep_in / max(rep, 1):.3f} ({rep_in} of {rep} repaired)")
if ndimage is not None:
    print(f"regions: recall {found / max(truth_regions, 1):.3f} ({found} of {truth_regions}), "
          f"precision {(regions - false_regions) / max(regions, 1):.3f} "
          f"({false_regions} of {regions} repair regions touch no defect)")
