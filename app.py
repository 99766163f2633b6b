"""Entry point for `python app.py` and for Hugging Face Spaces: starts the web UI.

Takes the same flags as `python -m clipdemo serve` (--host, --port, --sd-model, --clip-model, --share, ...).
"""

import sys

from clipdemo.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
