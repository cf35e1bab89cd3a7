"""Serve Keystone or Barbican on loopback with a threaded wsgiref server.

Test-environment helper for scripts/servers/openstack.sh, not a production
server. Usage:

    python serve.py keystone PORT CONFIG_DIR
    python serve.py barbican PORT PASTE_INI

Keystone reads CONFIG_DIR/keystone.conf (through OS_KEYSTONE_CONFIG_DIR).
Barbican reads barbican.conf from oslo.config's default places, so the
caller sets HOME to a folder holding .barbican/barbican.conf.
"""

import os
import socketserver
import sys
import threading
from wsgiref import simple_server


class ThreadingWSGIServer(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    """wsgiref server answering each connection in its own thread."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class QuietHandler(simple_server.WSGIRequestHandler):
    """Logs one short line per request (method, path, status), no headers."""

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.log_date_time_string(), fmt % args))


def serialized(app):
    """Runs one request at a time through `app`, whole body included.

    Both services keep their state in SQLite, which has a single writer:
    concurrent write transactions (Barbican writes even on some reads, e.g.
    its project table) fail at once with "database is locked" instead of
    waiting. The server still accepts and queues concurrent connections.
    """
    lock = threading.Lock()

    def wrapper(environ, start_response):
        with lock:
            result = app(environ, start_response)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        return [body]

    return wrapper


def keystone_app(config_dir):
    os.environ["OS_KEYSTONE_CONFIG_DIR"] = config_dir
    from keystone.server import wsgi

    return wsgi.initialize_public_application()


def barbican_app(paste_ini):
    import barbican.common.config  # noqa: F401  (registers options, reads barbican.conf)
    from paste import deploy

    return deploy.loadapp("config:" + os.path.abspath(paste_ini))


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("keystone", "barbican"):
        sys.stderr.write(__doc__)
        return 2
    which, port, arg = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    # oslo.config parses sys.argv: leave it nothing of ours to reject.
    sys.argv = sys.argv[:1]
    app = keystone_app(arg) if which == "keystone" else barbican_app(arg)
    server = simple_server.make_server(
        "127.0.0.1", port, serialized(app), server_class=ThreadingWSGIServer, handler_class=QuietHandler
    )
    sys.stderr.write("%s listening on 127.0.0.1:%d\n" % (which, port))
    sys.stderr.flush()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
