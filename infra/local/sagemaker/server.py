"""The local SageMaker service as a web app: SageMaker (JSON 1.1) and its runtime (REST) on one port.

`create_app(state_dir)` builds the app (H4b's daemon may host it in-process and pass
`on_status_change`); `serve(host, port, state_dir)` runs it until SIGTERM/SIGINT, then stops the
endpoint hosts it started.
"""
from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

from infra.local.sagemaker import executor
from infra.local.sagemaker.exceptions import InternalFailure, SageMakerError, UnknownOperationException
from infra.local.sagemaker.hosting import HostFactory, start_endpoint_host
from infra.local.sagemaker.models.backend import BackendDict, SageMakerBackend
from infra.local.sagemaker.models.base import StatusCallback
from infra.local.sagemaker.responses import RuntimeResponse, SageMakerResponse, error_response
from lambdas.shared.config import LOCAL_ACCOUNT_ID

logger = logging.getLogger(__name__)

BACKENDS_KEY = "samay_sagemaker_backends"


def create_app(state_dir: Path, on_status_change: StatusCallback | None = None,
               start_host: HostFactory = start_endpoint_host, account: str = LOCAL_ACCOUNT_ID) -> Flask:
    """The app over the state in `state_dir` (restored now: saved endpoints start their hosts again)."""
    state_dir = Path(state_dir)

    def make_backend(account_id: str, region: str) -> SageMakerBackend:
        return SageMakerBackend(account_id, region, state_dir, launch_execution=executor.launch,
                                on_status_change=on_status_change, start_host=start_host)

    backends = BackendDict(make_backend)
    backends.load_saved(state_dir)
    sagemaker = SageMakerResponse(backends, account)
    runtime = RuntimeResponse(backends, account)
    app = Flask(__name__)
    app.extensions[BACKENDS_KEY] = backends

    @app.post("/")
    def sagemaker_api() -> Response:
        return sagemaker.dispatch(request)

    @app.post("/endpoints/<endpoint_name>/invocations")
    def invoke_endpoint(endpoint_name: str) -> Response:
        try:
            return runtime.invoke_endpoint(request, endpoint_name)
        except SageMakerError as err:
            return error_response(err, rest=True)

    @app.get("/_samay/health")
    def health() -> Any:
        return jsonify(status="ok", endpoint_hosts={arn: host for backend in backends.all()
                                                    for arn, host in backend.hosts.describe().items()})

    @app.post("/_samay/reset")
    def reset() -> Any:
        for backend in backends.all():
            backend.reset()
        return jsonify(status="reset")

    @app.errorhandler(SageMakerError)
    def aws_error(err: SageMakerError) -> Response:
        return error_response(err)

    @app.errorhandler(404)
    @app.errorhandler(405)
    def not_an_operation(err: Any) -> Response:
        return error_response(UnknownOperationException(f"{request.method} {request.path} is not a SageMaker API route"))

    @app.errorhandler(Exception)
    def internal_error(err: Exception) -> Response:
        logger.exception("unhandled error in %s", request.headers.get("X-Amz-Target", request.path))
        return error_response(InternalFailure(f"{type(err).__name__}: {err}"))

    return app


def serve(host: str, port: int, state_dir: Path, on_status_change: StatusCallback | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then stop every endpoint host this process started."""
    app = create_app(state_dir, on_status_change)
    server = make_server(host, port, app, threaded=True)
    stopping = threading.Event()

    def stop(signum: int, _frame: Any) -> None:
        logger.info("signal %d: shutting down", signum)
        stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logger.info("local SageMaker listening on http://%s:%d (state in %s)", host, port, state_dir)
    try:
        server.serve_forever()
    finally:
        for backend in app.extensions[BACKENDS_KEY].all():
            backend.shutdown()
