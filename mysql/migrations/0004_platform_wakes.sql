-- Waking apps through FCM and APNs (DESIGN.md v1.1).

-- An app's settings: how many normal-priority campaign and broadcast messages a device
-- gets a day (NULL: no cap), and whether platform alerts carry the content.
ALTER TABLE apps
    ADD COLUMN marketing_cap_per_day INT UNSIGNED NULL,
    ADD COLUMN push_content ENUM('inline', 'private') NOT NULL DEFAULT 'inline';

-- An app's credentials for one platform: `public` holds what GET /v1/app shows (JSON),
-- `sealed` the private key encrypted with PUSH_SECRETS_KEY (Fernet). `status`:
-- rejected when Google or Apple refused them, until they are replaced.
CREATE TABLE app_credentials (
    app_id BIGINT UNSIGNED NOT NULL,
    provider ENUM('fcm', 'apns') NOT NULL,
    public JSON NOT NULL,
    sealed TEXT NOT NULL,
    status ENUM('active', 'rejected') NOT NULL DEFAULT 'active',
    rejected_reason VARCHAR(200) NULL,
    rejected_at DATETIME(6) NULL,
    updated_at DATETIME(6) NOT NULL,
    PRIMARY KEY (app_id, provider),
    CONSTRAINT app_credentials_app FOREIGN KEY (app_id) REFERENCES apps (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- A device's platform push token; invalid once the platform said it is dead, until
-- the device sends a new one. push_token_at: when it was registered (APNs 410s older
-- than this say nothing about it).
ALTER TABLE devices
    ADD COLUMN push_provider ENUM('fcm', 'apns') NULL,
    ADD COLUMN push_token VARCHAR(4096) NULL,
    ADD COLUMN push_status ENUM('active', 'invalid') NULL,
    ADD COLUMN push_invalid_reason VARCHAR(200) NULL,
    ADD COLUMN push_token_at DATETIME(6) NULL,
    ADD KEY devices_push (app_id, status, push_status);

ALTER TABLE notifications
    ADD COLUMN woken INT UNSIGNED NOT NULL DEFAULT 0 AFTER collapsed,
    ADD COLUMN wake_failed INT UNSIGNED NOT NULL DEFAULT 0 AFTER woken;
