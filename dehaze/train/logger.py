"""Per-run logging: TensorBoard events, a JSON-lines stats log, image grids, plots, progress bar.

Only the main process writes; on other ranks every method is a no-op.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm


class RunLogger:
    """Writes ``run_dir/tb/`` (TensorBoard), ``run_dir/stats.jsonl`` and ``run_dir/images/``.

    Example:
        >>> log = RunLogger(tmp_dir)                      # doctest: +SKIP
        >>> log.scalars(10, {"loss/G": 0.3, "lr": 2e-4})  # doctest: +SKIP
    """

    def __init__(self, run_dir: str | Path, enabled: bool = True):
        self.dir = Path(run_dir)
        self.enabled = enabled
        self._tb = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter  # imported lazily: slow import

            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / "images").mkdir(exist_ok=True)
            self._tb = SummaryWriter(str(self.dir / "tb"))
            self._stats = open(self.dir / "stats.jsonl", "a", buffering=1)

    def scalars(self, step: int, values: dict[str, float], prefix: str = "") -> None:
        """Log scalar values under ``prefix/name``."""
        if not self.enabled:
            return
        row = {"step": int(step), "time": round(time.time(), 3)}
        for k, v in values.items():
            key = f"{prefix}/{k}" if prefix else k
            v = float(v)
            self._tb.add_scalar(key, v, step)
            row[key] = v
        self._stats.write(json.dumps(row) + "\n")

    def image(self, tag: str, grid: torch.Tensor, step: int, save: bool = True) -> None:
        """Log a ``(3, H, W)`` image in [0, 1]; also saved as ``images/<tag>-<step>.png``."""
        if not self.enabled:
            return
        grid = grid.detach().float().clamp(0, 1).cpu()
        self._tb.add_image(tag, grid, step)
        if save:
            from torchvision.utils import save_image

            save_image(grid, self.dir / "images" / f"{tag.replace('/', '_')}-{step:07d}.png")

    def figure(self, tag: str, fig, step: int) -> None:
        """Log a matplotlib figure (also saved as PNG) and close it."""
        if not self.enabled:
            import matplotlib.pyplot as plt

            plt.close(fig)
            return
        fig.savefig(self.dir / "images" / f"{tag.replace('/', '_')}-{step:07d}.png", dpi=100)
        self._tb.add_figure(tag, fig, step, close=True)

    def text(self, tag: str, value: str, step: int = 0) -> None:
        if self.enabled:
            self._tb.add_text(tag, value, step)

    def close(self) -> None:
        if self.enabled and self._tb is not None:
            self._tb.close()
            self._stats.close()
            self._tb = None


def progress(total: int, initial: int = 0, enabled: bool = True, desc: str = "train") -> tqdm:
    """A tqdm bar on stderr for the main process (disabled elsewhere or when not a terminal in CI)."""
    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, dynamic_ncols=True,
                file=sys.stderr, mininterval=1.0, smoothing=0.05)
