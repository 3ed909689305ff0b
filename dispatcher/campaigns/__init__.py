"""Campaigns: sends to a selected audience, now or later, fanned out in the background
by the campaign worker (`python -m dispatcher.campaigns`), jobs on Redis with RQ.
See docs/campaigns.md."""
