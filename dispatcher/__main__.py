"""`python -m dispatcher`: run the dispatcher worker."""

from dispatcher.worker import main

main()
