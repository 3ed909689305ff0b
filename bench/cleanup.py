"""Remove what an interrupted benchmark left: devices of the bench's apps (named
`bench ...`) that are not marked deleted yet, their queues, exchanges and Redis keys.

    python -m bench.cleanup
"""

from __future__ import annotations

from bench import harness
from bench.harness import Device, Fleet


def main() -> None:
    s = harness.settings()
    conn = harness.mysql_connect(s)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT a.id, d.id FROM apps a JOIN devices d ON d.app_id = a.id"
                " WHERE a.name LIKE 'bench %%' AND d.status <> 'deleted'"
            )
            rows = cur.fetchall()
    finally:
        conn.close()
    by_app: dict[str, list[Device]] = {}
    for app_id, device_id in rows:
        by_app.setdefault(str(app_id), []).append(Device(str(device_id), ""))
    for app_id, devices in by_app.items():
        print(f"app {app_id}: removing {len(devices)} devices", flush=True)
        harness.remove_fleet(Fleet({"id": app_id}, devices))
    if not by_app:
        print("nothing left over")


if __name__ == "__main__":
    main()
