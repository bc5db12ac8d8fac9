"""``python -m cht_assets.demo`` = ``cht-demo-data``."""

import sys

from cht_assets.demo.cli import main

sys.exit(main())
