"""python -m benchmarks [generation|default-stack|eval|retrieval|soak] [options]; no name runs generation, then
default-stack."""

import os
import sys

# Benchmarks never download: every model is built from a config and loaded from a local folder or cache.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

name, argv = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else (None, sys.argv[1:])
if name == "eval":
    from .evaluation import main

    main(argv)
elif name == "retrieval":
    from .retrieval import main

    main(argv)
elif name == "soak":
    from .soak import main

    main(argv)
elif name == "default-stack":
    from .default_stack import main

    main(argv)
elif name in (None, "generation"):
    from .generation import main

    main(argv)
    if name is None and "--device" not in argv:  # the shipped defaults on this machine
        from .default_stack import main as default_stack

        default_stack([a for a in argv if a != "--skip-compile"])
else:
    sys.exit(f"unknown benchmark '{name}': choose generation, default-stack, eval or retrieval")
