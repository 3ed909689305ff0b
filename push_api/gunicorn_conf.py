"""gunicorn settings for push_api: gevent workers, so that long-polling syncs wait on
greenlets instead of tying up threads."""

import os

worker_class = "gevent"
workers = int(os.environ.get("PUSH_API_WORKERS", "1"))
worker_connections = int(os.environ.get("PUSH_API_WORKER_CONNECTIONS", "10000"))
timeout = 60
graceful_timeout = 10
keepalive = 75
accesslog = None
# gunicorn's control socket defaults to one path per user ($XDG_RUNTIME_DIR/gunicorn.ctl
# or ~/.gunicorn/gunicorn.ctl): two instances on a machine would take it from each
# other, and the stack manages its processes through supervisord, not through it
control_socket_disable = True


# every this many seconds the worker's long-lived objects leave the garbage collector's
# sight (pushbox_core/gc_freeze.py); 0: never
gc_freeze_every_s = float(os.environ.get("PUSH_API_GC_FREEZE_S", "10"))


def post_worker_init(worker):
    """In the worker, once gevent has patched it: short collector pauses with many
    open streams (pushbox_core/gc_freeze.py)."""
    if gc_freeze_every_s > 0:
        from pushbox_core.gc_freeze import Freezer

        Freezer(freeze_every_s=gc_freeze_every_s).start()


def worker_exit(server, worker):
    """A worker that stops sends what its batchers still hold (wake-ups, sync counters)
    and closes its connections (dispatcher.bootstrap.Pushbox.close)."""
    extensions = getattr(getattr(worker, "wsgi", None), "extensions", {})
    pushbox = extensions.get("pushbox")
    if pushbox is not None:
        pushbox.close()


def child_exit(server, worker):
    """A worker that ended (however): its live gauges (waiting syncs, streams) no
    longer count in /metrics (pushbox_core.metrics)."""
    from pushbox_core import metrics  # after PROMETHEUS_MULTIPROC_DIR is read

    metrics.process_exited(worker.pid)
