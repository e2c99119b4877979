"""Run the studio app under uvicorn: in the foreground (`dcgan studio`, stops on SIGINT/SIGTERM) or in a thread
(tests, notebooks), always on a socket bound first so a port in use is a clear error."""

from __future__ import annotations

import signal
import socket
import threading
import time

from serving.studio.config import StudioConfig


class StudioServerError(Exception):
    pass


class StudioServer:
    def __init__(self, config: StudioConfig, backend=None):
        from serving.studio.app import create_app

        self.config = config
        self.app = create_app(config, backend)
        self.sock: socket.socket | None = None
        self.port = 0
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.config.host in ("0.0.0.0", "") else self.config.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    @staticmethod
    def bind_socket(host: str, port: int) -> socket.socket:
        """A listening socket on host:port (StudioServerError naming the address when it cannot be had)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            sock.close()
            raise StudioServerError(f"cannot listen on {host}:{port}: {e.strerror or e} "
                                    "(pick another --port)") from None
        sock.listen(128)
        return sock

    def bind(self, sock: socket.socket | None = None) -> StudioServer:
        """Listen on the configured address, or adopt `sock` (bound earlier, e.g. while waiting for the model)."""
        sock = sock or self.bind_socket(self.config.host, self.config.port)
        self.sock, self.port = sock, sock.getsockname()[1]
        return self

    def check_model_server(self) -> bool | str:
        """True when the model server answers for the default model, else why not (one short call)."""
        from serving.client import ServingClientError

        backend = self.app.state.backend
        try:
            backend.client.metadata(model=self.config.model, label=self.config.label, timeout=3.0)
            return True
        except ServingClientError as e:
            return f"the model server at {self.config.server} does not answer for model {self.config.model!r}: {e}"

    def _uvicorn(self):
        import uvicorn

        config = uvicorn.Config(self.app, log_level="warning", access_log=False, timeout_keep_alive=5,
                                timeout_graceful_shutdown=3)
        self._server = uvicorn.Server(config)
        return self._server

    def run(self, announce=print) -> None:
        """Serve until SIGINT/SIGTERM, then shut down gracefully (in-flight requests finish) and return."""
        stop = threading.Event()
        previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            while not stop.wait(0.5) and self._thread is not None and self._thread.is_alive():
                pass
            self.stop()
            announce("Studio stopped.")
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def start(self) -> StudioServer:
        """Serve in a background thread; returns once the server accepts requests."""
        if self.sock is None:
            self.bind()
        server = self._uvicorn()
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [self.sock]}, name="studio",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise StudioServerError(f"the studio did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self) -> StudioServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
