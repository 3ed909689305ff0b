"""`python -m dispatcher.platforms`: the wake worker."""

from dispatcher.platforms.wake_worker import main

main()
