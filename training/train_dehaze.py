#!/usr/bin/env python
"""Train a dehazing generator: ``python training/train_dehaze.py --config training/configs/small.yaml``.

Multi-GPU / multi-node: ``torchrun --nproc_per_node=4 training/train_dehaze.py --config ...``.
All logic lives in :mod:`dehaze.train.dehazing`; this file is only the entry point.
"""

import sys

from dehaze.train.dehazing import main

if __name__ == "__main__":
    sys.exit(main())
