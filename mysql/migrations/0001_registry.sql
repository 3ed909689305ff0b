-- Apps, devices and their topic subscriptions.
CREATE TABLE apps (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(200) NOT NULL,
    app_key_hash CHAR(64) NOT NULL,
    server_key_hash CHAR(64) NOT NULL,
    created_at DATETIME(6) NOT NULL,
    UNIQUE KEY apps_app_key (app_key_hash),
    UNIQUE KEY apps_server_key (server_key_hash)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- status: pending (row written, queue not yet declared: invisible), active, stale
-- (its queue expired), deleted. Rows are never removed, so ids are never reused.
CREATE TABLE devices (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    app_id BIGINT UNSIGNED NOT NULL,
    installation_id VARCHAR(200) NOT NULL,
    secret_hash CHAR(64) NOT NULL,
    platform ENUM('ios', 'android', 'web') NOT NULL,
    user_id VARCHAR(128) NULL,
    locale VARCHAR(35) NULL,
    app_version VARCHAR(64) NULL,
    status ENUM('pending', 'active', 'stale', 'deleted') NOT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    last_active_at DATETIME(6) NOT NULL,
    UNIQUE KEY devices_installation (app_id, installation_id),
    KEY devices_user (app_id, user_id, status),
    KEY devices_status (status, updated_at),
    KEY devices_app (app_id, status),
    CONSTRAINT devices_app FOREIGN KEY (app_id) REFERENCES apps (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE device_topics (
    device_id BIGINT UNSIGNED NOT NULL,
    app_id BIGINT UNSIGNED NOT NULL,
    topic VARCHAR(128) NOT NULL,
    PRIMARY KEY (device_id, topic),
    KEY device_topics_topic (app_id, topic),
    CONSTRAINT device_topics_device FOREIGN KEY (device_id) REFERENCES devices (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
