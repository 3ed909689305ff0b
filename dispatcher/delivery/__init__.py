"""Delivery: getting what is in a device's queues to the device.

| module | what it holds |
| --- | --- |
| `decisions.py` | pure: what a read returns, acks or drops (dedupe, expiry, collapse, ack-by-tag) |
| `mailbox.py` | the broker side: holding channels, reading ahead, acking by tag |
| `sync.py` | the sync service: ack, read, wait; the hand-over between API processes |
| `holders.py` | which API process holds a device's messages (Redis) |
| `signals.py` | wake-ups and let-go requests between processes (Redis pub/sub) |
| `tally.py` | counters fed by syncs, written to MySQL in the background |

See docs/delivery.md for the reasoning.
"""
