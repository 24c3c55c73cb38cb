"""`asymcl worker serve|stop|status`: the warm run server (see `asymcl.worker.server`)."""

from __future__ import annotations

import argparse
import json


def _serve(args: argparse.Namespace) -> int:
    from asymcl.worker.server import Server

    Server(args.socket, args.slots, device=args.device, parent_pid=args.parent_pid).serve()
    return 0


def _stop(args: argparse.Namespace) -> int:
    from asymcl.worker import stop

    if stop(args.socket):
        print(f"stopped the warm worker server on {args.socket}")
        return 0
    print(f"no warm worker server answers on {args.socket}")
    return 1


def _status(args: argparse.Namespace) -> int:
    from asymcl.worker import ping

    reply = ping(args.socket)
    if reply is None:
        print(f"no warm worker server answers on {args.socket}")
        return 1
    print(json.dumps(reply, indent=2))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from asymcl.worker import SOCKET_ENV

    p = subparsers.add_parser(
        "worker",
        help="warm run server: K processes that keep torch loaded and run `asymcl train` jobs",
        description=(
            "A long-lived server with K warm worker processes (torch, torchvision and "
            "scikit-learn imported, the device initialised). `asymcl train` hands its run to it "
            f"when the environment variable {SOCKET_ENV} names the server's socket, and runs "
            "in-process otherwise. On CUDA the K workers share the GPU (K runs at a time). "
            "The Snakefile starts and stops it when the config sets runner.warm_workers > 0."
        ),
    )
    sub = p.add_subparsers(dest="worker_command", metavar="ACTION", required=True)
    serve = sub.add_parser("serve", help="run the server in the foreground until stopped")
    serve.add_argument("--socket", required=True, metavar="PATH", help="Unix socket path to listen on")
    serve.add_argument("--slots", type=int, default=2, metavar="K", help="worker processes (default %(default)s)")
    serve.add_argument("--device", default="auto",
                       help="device the workers initialise at start: auto | cpu | cuda | cuda:N (default %(default)s); "
                            "each run still uses its own --device")
    serve.add_argument("--parent-pid", type=int, default=None, metavar="PID",
                       help="exit when this process (e.g. Snakemake) has gone")
    serve.set_defaults(func=_serve)
    stop = sub.add_parser("stop", help="stop a running server (waits for it to exit)")
    stop.add_argument("--socket", required=True, metavar="PATH")
    stop.set_defaults(func=_stop)
    status = sub.add_parser("status", help="print a running server's state as JSON")
    status.add_argument("--socket", required=True, metavar="PATH")
    status.set_defaults(func=_status)
