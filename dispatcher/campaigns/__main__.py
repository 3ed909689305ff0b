"""`python -m dispatcher.campaigns`: the campaign worker (or `reconcile`)."""

import sys

from dispatcher.campaigns.worker import main

sys.exit(main())
