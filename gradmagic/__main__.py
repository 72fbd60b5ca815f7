"""``python -m gradmagic FILE.py|FILE.ipynb [--html OUT.html]`` (see :mod:`gradmagic.cli`)."""
from gradmagic.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
