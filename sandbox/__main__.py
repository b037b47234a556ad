"""``python -m sandbox [--host H] [--port P] [--state-file F] [--threads N]``.

Prints ``sandbox listening on http://HOST:PORT`` once it accepts connections (``--port 0``
picks a free port, which the line reports). With ``--state-file`` the state (pending webhook
deliveries included) is loaded at start, saved within a second of each change without holding up
requests (:mod:`sandbox.core.statefile`), and saved again on exit. A port in use is one line on stderr
and exit status 2.
"""

from __future__ import annotations

import argparse
import errno
import signal
import sys
import threading

from sandbox.app import SandboxApp, make_server
from sandbox.core.statefile import StateFile
from sandbox.core.store import Store
from sandbox.events import delivery as webhooks

AUTOSAVE_SECONDS = 1.0
EXIT_PORT_IN_USE = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Local Stripe-compatible API server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--state-file", help="JSON file to load state from and save it to")
    parser.add_argument("--threads", type=int, default=16, help="worker threads serving requests")
    args = parser.parse_args(argv)

    store = Store()
    app = SandboxApp(store)
    try:
        server = make_server(app, args.host, args.port, args.threads)
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            raise
        print(f"sandbox: port {args.port} is in use (set TOLLBOOTH_SANDBOX_PORT to another port)", file=sys.stderr)
        return EXIT_PORT_IN_USE
    state_file = StateFile(store, args.state_file) if args.state_file else None
    if state_file is not None:
        state_file.load()
    delivery = webhooks.resume(store)

    stop = threading.Event()
    if state_file is not None:
        threading.Thread(target=state_file.autosave, args=(stop, AUTOSAVE_SECONDS), daemon=True).start()

    def shutdown(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, shutdown)
    print(f"sandbox listening on http://{args.host}:{server.effective_port}", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.close()
        delivery = delivery or webhooks.attached(store)
        if delivery is not None:
            delivery.stop()
        if state_file is not None:
            state_file.release()
            state_file.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
