"""``python -m realtime_tse.cli``: the ``realtime-tse`` command."""
import sys

from realtime_tse.cli.main import main

sys.exit(main())
