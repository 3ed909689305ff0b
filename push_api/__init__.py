"""The HTTP API: device endpoints and sender endpoints. Views are thin; the work is in
device_registry and dispatcher."""
