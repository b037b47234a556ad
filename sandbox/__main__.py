"""``python -m sandbox [--host H] [--port P] [--state-file F] [--threads N]``.

Prints ``sandbox listening on http://HOST:PORT`` once it accepts connections (``--port 0``
picks a free port, which the line reports). With ``--state-file`` the state is loaded at start,
saved within a second of each change, and saved again on exit.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from sandbox.app import SandboxApp, make_server
from sandbox.store import Store

AUTOSAVE_SECONDS = 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Local Stripe-compatible API server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--state-file", help="JSON file to load state from and save it to")
    parser.add_argument("--threads", type=int, default=16, help="worker threads serving requests")
    args = parser.parse_args(argv)

    store = Store()
    if args.state_file and os.path.exists(args.state_file):
        store.load(args.state_file)
    app = SandboxApp(store)
    server = make_server(app, args.host, args.port, args.threads)

    stop = threading.Event()
    if args.state_file:
        threading.Thread(target=_autosave, args=(store, args.state_file, stop), daemon=True).start()

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
        if args.state_file:
            store.save(args.state_file)
    return 0


def _autosave(store: Store, path: str, stop: threading.Event) -> None:
    while not stop.wait(AUTOSAVE_SECONDS):
        if store.dirty:
            store.save(path)


if __name__ == "__main__":
    sys.exit(main())
