import os
import sys

# Benchmarks never download: every model is built from a config and loaded from a local folder.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

if len(sys.argv) > 1 and sys.argv[1] == "eval":
    from .evaluation import main

    main(sys.argv[2:])
else:
    from .generation import main

    main(sys.argv[1:])
