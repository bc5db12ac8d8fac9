import sys

from cht_assets.metrics.server import main

sys.exit(main())
