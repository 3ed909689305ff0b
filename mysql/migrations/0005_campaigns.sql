-- Campaigns (DESIGN "Campaigns and bulk sends", v1.1): a send to a selected audience,
-- now or later, fanned out in the background by the campaign worker (RQ on Redis).
-- This row is the record: Redis holds only the job, and a job that vanished is queued
-- again from here (dispatcher/campaigns/reconciler.py).
--
-- id: also the id of every message the campaign publishes and of its notifications
-- row (where syncs, dead letters and wakes count acked, expired, dropped, woken).
-- seq: newest-first paging. cursor_id: the fan-out's progress, the highest device id
-- of the chunks published and counted so far (device ids only grow).
CREATE TABLE campaigns (
    id VARCHAR(40) NOT NULL PRIMARY KEY,
    seq BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    app_id BIGINT UNSIGNED NOT NULL,
    status ENUM('scheduled', 'queued', 'running', 'done', 'cancelled', 'failed') NOT NULL,
    priority ENUM('high', 'normal') NOT NULL,
    audience JSON NOT NULL,
    content JSON NOT NULL,
    send_at DATETIME(6) NOT NULL,
    created_at DATETIME(6) NOT NULL,
    started_at DATETIME(6) NULL,
    finished_at DATETIME(6) NULL,
    targets INT UNSIGNED NULL,
    published INT UNSIGNED NOT NULL DEFAULT 0,
    capped INT UNSIGNED NOT NULL DEFAULT 0,
    cursor_id BIGINT UNSIGNED NOT NULL DEFAULT 0,
    error VARCHAR(500) NULL,
    UNIQUE KEY campaigns_seq (seq),
    KEY campaigns_app (app_id, seq),
    KEY campaigns_unfinished (status, send_at),
    CONSTRAINT campaigns_app FOREIGN KEY (app_id) REFERENCES apps (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One row a chunk published and counted, keyed by where the chunk starts: a chunk run
-- twice (a worker killed after publishing, before this row committed; or two workers
-- on one campaign) finds its row there and adds nothing to the counters again. No
-- foreign key to campaigns: checking one would lock the campaign's row while a chunk is
-- counted, and a cancel must never wait for that.
CREATE TABLE campaign_chunks (
    campaign_id VARCHAR(40) NOT NULL,
    after_id BIGINT UNSIGNED NOT NULL,
    last_id BIGINT UNSIGNED NOT NULL,
    published INT UNSIGNED NOT NULL,
    capped INT UNSIGNED NOT NULL,
    done_at DATETIME(6) NOT NULL,
    PRIMARY KEY (campaign_id, after_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- a campaign's notifications row: what its messages' counters are written to
ALTER TABLE notifications
    MODIFY COLUMN target_kind ENUM('app', 'device', 'user', 'topic', 'campaign') NOT NULL;
