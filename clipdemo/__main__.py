import sys

from clipdemo.cli import main

sys.exit(main())
