"""One CLI command run twice: in one process, and under `accelerate launch` in two CPU processes."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# accelerate 1.x's `--cpu` alone runs ONE process; --multi_gpu on a machine without GPUs runs N CPU processes (gloo)
TWO_PROCESSES = ["--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
                 "--dynamo_backend", "no"]


def cli_env() -> dict[str, str]:
    """The environment for a child process: this checkout importable, one thread per process on 2 cores."""
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")


def run_one_and_two(args: list[str], out: Path, timeout: int = 300
                    ) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """`python ARGS --out OUT/one` and `accelerate launch ... ARGS --out OUT/two`; both must succeed."""
    single = subprocess.run([sys.executable, *args, "--out", str(out / "one")], capture_output=True, text=True,
                            env=cli_env(), timeout=timeout)
    assert single.returncode == 0, single.stderr[-3000:]
    accelerate = Path(sys.executable).with_name("accelerate")
    double = subprocess.run([str(accelerate), "launch", *TWO_PROCESSES, *args, "--out", str(out / "two")],
                            capture_output=True, text=True, env=cli_env(), timeout=timeout)
    assert double.returncode == 0, double.stderr[-3000:]
    return single, double
