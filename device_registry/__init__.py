"""The device registry: apps, devices, keys and topics in MySQL, and each device's
broker topology (its queues and bindings)."""
