"""Everything that publishes into device queues: broadcasts and targeted notifications
(HTTP), order events (worker), and the dead-letter bookkeeping."""
