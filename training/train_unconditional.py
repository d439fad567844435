#!/usr/bin/env python
"""Train an unconditional GAN for the SSD-GAN reproduction.

    python training/train_unconditional.py --model ssd-sngan --data ../shared/data/cifar10/train --width 64
    python training/train_unconditional.py --config training/configs/unconditional_sngan32.yaml --set train.n_dis=2
    torchrun --nproc_per_node=2 training/train_unconditional.py --model sngan --data cifar10 --data-root ~/data

Models: sngan, sngan-reg, ssd-sngan, ssd-sngan-reg, stylegan, ssd-stylegan (``--feature phase``
for the phase-aware SSD). All logic lives in :mod:`dehaze.gan.training`.
"""

import sys

from dehaze.gan.training import main

if __name__ == "__main__":
    sys.exit(main())
