"""`python -m dispatcher.platforms`: the wake worker.
`python -m dispatcher.platforms reseal`: seal every stored private key again with the
first key of PUSH_SECRETS_KEY (a key rotation, docs/wakes.md)."""

import sys

from dispatcher.platforms.wake_worker import main, reseal

if sys.argv[1:] == ["reseal"]:
    sys.exit(reseal())
main()
