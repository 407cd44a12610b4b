"""`taskmix run` as the console command runs it, stamping when the first optimizer step ends.

The seconds are counted from the creation of this process (interpreter start-up included)
and written to the file named by `$TASKMIX_BENCH_STAMP`; the run then goes on unchanged.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psutil
from torch.optim.optimizer import register_optimizer_step_post_hook

from taskmix.cli import main

STARTED = psutil.Process().create_time()


def stamp_first_step(optimizer, args, kwargs) -> None:
    Path(os.environ["TASKMIX_BENCH_STAMP"]).write_text(f"{time.time() - STARTED:.3f}")
    handle.remove()


handle = register_optimizer_step_post_hook(stamp_first_step)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
