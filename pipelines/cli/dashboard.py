"""`samay dashboard`: the QuickSight views as one self-contained HTML page, or served live."""
from __future__ import annotations

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import typer

from pipelines.cli._common import console

DEFAULT_OUT = Path(".samay") / "dashboard.html"


def write_dashboard(out: Path) -> Path:
    from pipelines.dashboard import data, page

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page.render(data.collect()))
    return out


def _serve(host: str, port: int, refresh: int) -> None:
    from pipelines.dashboard import data, page

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = page.render(data.collect(), refresh_seconds=refresh).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    console.print(f"Serving the dashboard on http://{host}:{server.server_port}/ (refreshes every {refresh} s; Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def dashboard(
    out: Path = typer.Option(DEFAULT_OUT, "--out", help="Where to write the HTML page."),
    serve: bool = typer.Option(False, "--serve", help="Serve the page on 127.0.0.1, rebuilt on every load."),
    port: int = typer.Option(8050, help="Port for --serve (0 = any free port)."),
    refresh: int = typer.Option(30, help="Browser refresh period in seconds for --serve."),
) -> None:
    """Write (or serve) the dashboard: predictions, classes, devices, failures, model versions vs the gate."""
    if serve:
        _serve("127.0.0.1", port, refresh)
        return
    path = write_dashboard(out)
    console.print(f"Dashboard written to {path.resolve()}")


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard)
