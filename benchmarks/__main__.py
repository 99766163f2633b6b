import sys

if len(sys.argv) > 1 and sys.argv[1] == "eval":
    from .evaluation import main
else:
    from .generation import main

main()
