"""What every Pushbox package shares: settings, names, errors and connections.

Imports no other Pushbox package.
"""
