-- sending: recorded, not yet confirmed by the broker. An order event's notification
-- has a fixed id, and is published again when its event comes back in that state.
ALTER TABLE notifications
    ADD COLUMN state ENUM('sending', 'sent') NOT NULL DEFAULT 'sent' AFTER collapsed;
