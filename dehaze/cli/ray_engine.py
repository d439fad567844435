"""``dehaze restore --engine ray``: the photos of a run restored by the workers of a Ray cluster.

The run is planned here exactly as for the local engine (:mod:`dehaze.cli.restore`: files
recognised by content, the tree mirrored, finished outputs skipped); the photos left to do
become a Ray Data dataset that ``map_batches`` hands to a pool of :class:`PhotoWorker` actors,
each holding one model. A worker restores and writes each photo with the local engine's
:func:`~dehaze.cli.restore.restore_file` (atomic writes through :mod:`dehaze.io`) and returns,
per file, an empty string or the one-line report of :func:`~dehaze.cli.restore.failure`; this
process prints them and the local engine's summary. Ray restarts a worker that dies and runs its
files again (``max_restarts`` / ``max_task_retries`` of Ray Data's actor pools), and since every
output is written atomically, a retried file is simply written again.

Inputs and OUT_DIR are local paths; on a cluster of several machines they must be at the same
path on every node (a shared filesystem). Ray is imported only here, and only when the engine
is chosen; without it the run stops with one line naming the ``[cluster]`` extra.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from tqdm import tqdm

from dehaze.cli.restore import Job, failure, method_of, restore_file
from dehaze.errors import ConfigError, DehazeError

MAX_BLOCKS = 2000  # Ray Data blocks (units of work and of retry) per run at most
WORKER_OPTIONS = ("method", "model", "device", "tile", "overlap", "threads", "strength", "protect", "max_pixels",
                  "quality")


class MissingRayError(DehazeError):
    """``--engine ray`` where Ray is not installed."""


def require_ray():
    """The ``ray`` module, or one line saying which extra installs it."""
    try:
        import ray
        import ray.data  # noqa: F401  (ray[data]: pyarrow, pandas)
    except ModuleNotFoundError as exc:
        raise MissingRayError(
            f"--engine ray needs {exc.name}, which is not installed here: pip install 'ssd-dehaze[cluster]'"
        ) from None
    return ray


# Ray Serve kills an HTTP proxy that is not ready within 5 s or misses health checks of 10 s; on a
# busy machine (two cores, other jobs) that happens and serving never starts. Raised for the Ray
# instances this process starts (their processes inherit the environment); the user's values win.
SERVE_PATIENCE = {"RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60", "RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S": "60",
                  "RAY_SERVE_PROXY_HEALTH_CHECK_PERIOD_S": "20"}


def patient_serve_env() -> None:
    """Set :data:`SERVE_PATIENCE` in this process's environment where the user has not (before ``ray.init``)."""
    for key, value in SERVE_PATIENCE.items():
        os.environ.setdefault(key, value)


def connect(address: str | None) -> bool:
    """Join the Ray cluster at ``address`` (``auto`` or HOST:PORT), or start a Ray instance on this
    machine bound to 127.0.0.1 when None. Returns True when this call started Ray (shut it down after);
    a Ray already initialised in this process (a test, a notebook) is used as it is."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    quiet = dict(logging_level=logging.WARNING, log_to_driver=False)
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            patient_serve_env()
            ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise ConfigError(f"cannot connect to {where}: {str(exc).splitlines()[0] if str(exc) else exc}") from None
    return True


def worker_options(args: argparse.Namespace) -> argparse.Namespace:
    """The options a worker needs, with the model resolved here to an absolute path (so every worker
    loads the file this run would, whatever its working folder or ``DEHAZE_MODEL``)."""
    from dehaze.inference import default_model_path

    opts = argparse.Namespace(**{name: getattr(args, name) for name in WORKER_OPTIONS})
    if opts.method.strip() == "model":
        opts.model = str(Path(opts.model).resolve()) if opts.model else str(default_model_path())
    elif Path(opts.method.strip()).is_file():
        opts.method = str(Path(opts.method.strip()).resolve())
    opts.threads = opts.threads or 1  # one core per worker unless asked: a worker is given --threads CPUs
    return opts


class PhotoWorker:
    """A Ray Data actor: one model, loaded once, restores the photos of the batches it is given.

    A batch has columns ``src``, ``dst`` (absolute paths), ``fmt`` and ``shown`` (the path as given
    on the command line); the answer has ``i`` (the rows' indexes) and ``error`` ("" when restored).
    """

    def __init__(self, options: argparse.Namespace):
        self.options = options
        self.fn = method_of(options)

    def __call__(self, batch: dict) -> dict:
        errors = []
        for src, dst, fmt, shown in zip(batch["src"], batch["dst"], batch["fmt"], batch["shown"]):
            errors.append(self.restore(Job(Path(src), Path(dst) if dst else None, fmt or None), str(shown)))
        return {"i": batch["i"], "error": errors}

    def restore(self, job: Job, shown: str) -> str:
        try:
            restore_file(job, self.fn, self.options)
        except Exception as exc:
            msg = failure(job.src, exc)
            if msg is None:
                raise
            return msg.replace(str(job.src), shown)  # the path as the user named it, as the local engine says
        return ""


def restore_on_ray(jobs: list[Job], args: argparse.Namespace, errors: list[tuple[Path, str]]) -> int:
    """Restore the photos ``jobs`` on Ray; append the failures to ``errors``; return how many were restored."""
    if not jobs:
        return 0
    ray = require_ray()
    options = worker_options(args)
    # a missing or broken model, or a bad option: one line here, before any worker starts (on the CPU: the
    # workers may have a GPU that this machine has not)
    label = getattr(method_of(argparse.Namespace(**{**vars(options), "device": "cpu"})), "name", args.method)
    started = connect(args.ray_address)
    try:
        return _run(ray, jobs, args, options, label, errors)
    finally:
        if started:
            ray.shutdown()


def _run(ray, jobs: list[Job], args, options, label: str, errors: list[tuple[Path, str]]) -> int:
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # our own bar, as the local engine's
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled"
    gpus = 1 if str(options.device).startswith("cuda") else 0
    workers = args.workers or max(1, int(ray.cluster_resources().get("CPU", 1) // options.threads))
    workers = min(workers, len(jobs))
    rows = [
        {"i": i, "src": str(j.src.resolve()), "dst": str(j.dst.resolve()) if j.dst else "", "fmt": j.fmt or "",
         "shown": str(j.src)}
        for i, j in enumerate(jobs)
    ]
    ds = ray.data.from_items(rows, override_num_blocks=min(len(rows), MAX_BLOCKS)).map_batches(
        PhotoWorker,
        fn_constructor_kwargs={"options": options},
        batch_size=1,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=options.threads,
        num_gpus=gpus,
    )
    restored = 0
    with tqdm(total=len(jobs), desc=f"dehaze on ray ({label}, {workers} workers)", unit="file",
              file=sys.stderr, dynamic_ncols=True) as bar:
        for row in ds.iter_rows():
            if row["error"]:
                errors.append((jobs[int(row["i"])].src, str(row["error"])))
                bar.write(f"skipped: {row['error']}", file=sys.stderr)
            else:
                restored += 1
            bar.update()
    return restored

