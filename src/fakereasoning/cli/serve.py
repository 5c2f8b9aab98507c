"""`fakereasoning serve`: run the web server (REST API, OpenAI-compatible chat endpoint, web page)."""

from __future__ import annotations

import argparse
import ipaddress
import signal
import socket
import sys
import threading

from fakereasoning.cli._args import add_crops_option
from fakereasoning.errors import FakeReasoningError
from fakereasoning.schema import DEFAULT_MODE
from fakereasoning.serve.detector import MODES


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "serve",
        help="serve the detector over HTTP: REST API, OpenAI-compatible chat endpoint and a web page",
        description=(
            "Serve a FakeReasoning model with FastAPI + uvicorn. Endpoints: POST /v1/detect, "
            "POST /v1/chat/completions, GET /v1/models, GET /healthz, and the web page at /. "
            "Binds 127.0.0.1 by default: the API has no authentication."
        ),
    )
    p.add_argument("--model", metavar="DIR",
                   help="model folder, or a `train --output` / checkpoint folder (default: the shipped model)")
    p.add_argument("--device", help="torch device for the model, e.g. cpu or cuda (default: the model's)")
    add_crops_option(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s; 0 picks a free one)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest encoded image (default: %(default)s)")
    p.add_argument("--max-pixels", type=int, default=36_000_000, help="largest decoded image (default: %(default)s)")
    p.add_argument("--max-pixels-in-flight", type=int, default=72_000_000,
                   help="decoded pixels held at once, over all requests; more wait (default: %(default)s)")
    p.add_argument("--max-queue", type=int, default=64, help="requests waiting beyond this get 503 (default: %(default)s)")
    p.add_argument("--max-batch", type=int, default=8, help="fast-mode micro-batch size (default: %(default)s)")
    p.add_argument("--max-batch-full", type=int, default=1, help="full-mode batch size (default: %(default)s)")
    p.add_argument("--batch-wait-ms", type=float, default=5.0, help="wait for a batch to fill (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per request before 504 (default: %(default)s)")
    p.add_argument("--default-mode", choices=MODES, default=DEFAULT_MODE,
                   help="mode when a /v1/detect request names none (default: %(default)s)")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    p.set_defaults(handler=run)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    """Bind before loading the model, so a taken port is a one-line error, not a late uvicorn exit."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FakeReasoningError(f"{host}: cannot resolve host ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise FakeReasoningError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    return sock


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from fakereasoning.serve.app import LOOPBACK_HOSTS, ServeLimits, create_app
    from fakereasoning.serve.detector import load_detector

    try:
        limits = ServeLimits(
            max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
            max_pixels=args.max_pixels,
            max_pixels_in_flight=args.max_pixels_in_flight,
            max_queue=args.max_queue,
            max_batch_fast=args.max_batch,
            max_batch_full=args.max_batch_full,
            batch_wait_ms=args.batch_wait_ms,
            request_timeout_s=args.timeout,
            default_mode=args.default_mode,
        )
    except ValueError as exc:
        raise FakeReasoningError(f"invalid limits: {exc}") from None
    if not 0 <= args.port <= 65535:
        raise FakeReasoningError(f"--port {args.port}: must be 0-65535")
    if not _is_loopback(args.host):
        print(
            f"fakereasoning: warning: binding {args.host}: the server is reachable from other machines and "
            "has no authentication",
            file=sys.stderr,
        )
    sock = _bind(args.host, args.port)
    try:
        detector = load_detector(args.model, device=args.device, crops=args.crops)
        # Loopback bind: answer only loopback host names (blocks DNS rebinding from web pages).
        allowed = [*LOOPBACK_HOSTS, args.host] if _is_loopback(args.host) else None
        app = create_app(detector, limits, allowed_hosts=allowed)
        port = sock.getsockname()[1]
        shown = f"[{args.host}]" if ":" in args.host else args.host
        print(f"fakereasoning: serving {detector.model_id} at http://{shown}:{port}/", file=sys.stderr, flush=True)
        config = uvicorn.Config(app, log_level=args.log_level, log_config=log_config(args.log_level),
                                timeout_graceful_shutdown=5)
        _run_until_stopped(uvicorn.Server(config), sock)
    finally:
        sock.close()
    print("fakereasoning: server stopped", file=sys.stderr)
    return 0


def log_config(level: str) -> dict:
    """uvicorn's logging, with its access log (one line per request) on stderr beside every other
    server line instead of alone on stdout, and the server's own lines (disconnects) at LEVEL too."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    config["loggers"]["fakereasoning"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _run_until_stopped(server: object, sock: socket.socket) -> None:
    """Run uvicorn; Ctrl-C or SIGTERM stop it gracefully and count as a normal exit (status 0).

    uvicorn shuts down on these signals, then re-raises them to the handlers it found; SIGTERM's handler
    here turns that into the same KeyboardInterrupt as Ctrl-C, which ends the command quietly.
    """
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None
    try:
        server.run(sockets=[sock])  # type: ignore[attr-defined]
    except KeyboardInterrupt:
        pass
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
