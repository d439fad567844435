"""Tests of training/train_dehaze.py, the dehazing trainer's entry point, run as a script (and by torchrun).

The trainer itself is tested in tests/train/test_dehazing.py.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]


def test_unreadable_image_is_one_error_line(dehazing_data, tmp_path):
    bad = tmp_path / "clean"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (bad / "ok.png").write_bytes((dehazing_data / "clean" / "p0.png").read_bytes())
    cfg_args = [f"--set=data.clean=[{bad}]", f"--set=val.dirs=[{dehazing_data / 'val'}]",
                f"--set=out={tmp_path / 'o'}", "--set=data.workers=0", "--set=train.steps=2", "--set=data.crop=32", "--set=train.batch=2",
                "--set=model.G.depth=3", "--set=model.G.width=4", "--set=mode=l1", "--set=data.cache=true"]
    r = subprocess.run([sys.executable, str(REPO / "training" / "train_dehaze.py"), *cfg_args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "broken.png" in lines[0], r.stderr


def test_two_process_ddp_on_cpu(dehazing_data, tmp_path):
    out = tmp_path / "ddp"
    args = ["--set=mode=ssd", f"--set=out={out}", f"--set=data.clean=[{dehazing_data / 'clean'}]",
            f"--set=val.dirs=[{dehazing_data / 'val'}]", "--set=data.crop=32", "--set=data.workers=0",
            "--set=data.samples_per_epoch=16", "--set=train.batch=2", "--set=train.steps=3", "--set=val.every=3",
            "--set=log.every=1", "--set=device=cpu", "--set=model.G.width=4", "--set=model.G.depth=3",
            "--set=model.G.max_width=16", "--set=model.D.width=4", "--set=model.D.n_layers=2",
            "--set=model.C.conv_width=4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as s:  # a free port for the rendezvous (port 0 is not accepted by torchrun)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                        "--master_addr=127.0.0.1", f"--master_port={port}",
                        str(REPO / "training" / "train_dehaze.py"), *args],
                       capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    ckpt = torch.load(out / "last.pt", weights_only=False)
    assert ckpt["step"] == 3
    assert "world=2" in r.stderr
