-- What was sent, to whom, and what became of it.
CREATE TABLE notifications (
    id VARCHAR(40) NOT NULL PRIMARY KEY,
    app_id BIGINT UNSIGNED NOT NULL,
    kind ENUM('broadcast', 'notification') NOT NULL,
    target_kind ENUM('app', 'device', 'user', 'topic') NOT NULL,
    target VARCHAR(200) NULL,
    priority ENUM('high', 'normal') NOT NULL,
    collapse_key VARCHAR(64) NULL,
    ttl_s INT UNSIGNED NOT NULL,
    created_at DATETIME(6) NOT NULL,
    expires_at DATETIME(6) NOT NULL,
    targets INT UNSIGNED NOT NULL,
    acked INT UNSIGNED NOT NULL DEFAULT 0,
    expired INT UNSIGNED NOT NULL DEFAULT 0,
    dropped INT UNSIGNED NOT NULL DEFAULT 0,
    collapsed INT UNSIGNED NOT NULL DEFAULT 0,
    KEY notifications_app (app_id, created_at),
    CONSTRAINT notifications_app FOREIGN KEY (app_id) REFERENCES apps (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
