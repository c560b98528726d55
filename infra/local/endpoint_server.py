"""The inside of a local endpoint: what the SageMaker TensorFlow Serving container does, in one process.

Started by `EndpointHost` as `python -m infra.local.endpoint_host serve --model-dir DIR --port P`.
It loads the SavedModel of the highest-numbered version directory `<model_dir>/<int>/` once, imports
`<model_dir>/code/inference.py` with the code directory first on sys.path (its requirements.txt is
checked and warned about, never installed), and serves on 127.0.0.1:
- `GET /ping` -> 200 once the model is loaded;
- `POST /invocations` -> the handler chain of the container: `input_handler(data, context)` gives a
  TFS REST request body, the `serving_default` signature (or the request's `signature_name`) runs
  it, the result goes to `output_handler(response, context)` as a `requests.Response` with the TFS
  JSON (`{"predictions": ...}`), and its `(body, content_type)` is the answer. A script defining
  `handler(data, context)` instead calls the TFS REST API itself at `context.rest_uri`; without
  `code/inference.py` the request body goes to TFS unchanged, as in the container;
- `POST /v1/models/<name>:predict` -> the TFS REST predict API (row `instances` or columnar `inputs`).
A handler that raises answers 400 `{"error": message, "error_type": name}` (the service turns it into
InvokeEndpoint's ModelError); TFS errors answer 400 `{"error": ...}` as TFS does. The model stays
loaded, the server is threaded with keep-alive, and nothing is re-read per request.
TensorFlow is imported here only, never by the process that starts endpoints.
"""
from __future__ import annotations

import gc
import importlib.util
import io
import json
import logging
import sys
from collections import namedtuple
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import numpy as np
import requests

from infra.local.jobs.requirements import unmet_requirements

try:  # the TFS request of a 20 s recording is ~1 MB of JSON: orjson parses it several times faster
    from orjson import loads as json_loads
except ImportError:  # pragma: no cover - orjson is pinned in constraints.txt, json is the fallback
    json_loads = json.loads

logger = logging.getLogger(__name__)

MODEL_NAME = "model"
DEFAULT_SIGNATURE = "serving_default"

Context = namedtuple(
    "Context",
    "model_name, model_version, method, rest_uri, grpc_uri, custom_attributes, "
    "request_content_type, accept_header, content_length",
)


class PredictError(ValueError):
    """A TFS REST request the model cannot run (TFS answers these with 400)."""


def latest_version_dir(model_dir: Path) -> Path:
    """The SavedModel directory TFS serves: the highest integer-named directory."""
    versions = sorted((int(p.name), p) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())
    if not versions:
        raise FileNotFoundError(f"{model_dir} holds no SavedModel version directory (<int>/)")
    return versions[-1][1]


def load_inference_module(code_dir: Path) -> ModuleType | None:
    """Import code/inference.py as the container does (code dir first on sys.path), or None."""
    script = code_dir / "inference.py"
    if not script.is_file():
        return None
    requirements = code_dir / "requirements.txt"
    for unmet in unmet_requirements(requirements) if requirements.is_file() else []:
        logger.warning("code/requirements.txt not satisfied locally (not installed): %s", unmet)
    sys.path.insert(0, str(code_dir))
    spec = importlib.util.spec_from_file_location("inference", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules["inference"] = module
    spec.loader.exec_module(module)
    if not hasattr(module, "handler") and not (hasattr(module, "input_handler") and hasattr(module, "output_handler")):
        raise TypeError(f"{script} defines neither handler() nor input_handler() and output_handler()")
    return module


class Model:
    """A loaded SavedModel answering TFS REST predict requests."""

    def __init__(self, version_dir: Path) -> None:
        import tensorflow as tf

        self.version = version_dir.name
        self._loaded = tf.saved_model.load(str(version_dir))
        self._signatures = dict(self._loaded.signatures)
        if DEFAULT_SIGNATURE not in self._signatures:
            raise KeyError(f"{version_dir} has no {DEFAULT_SIGNATURE!r} signature (has {sorted(self._signatures)})")
        self._warm_up()

    def _input_specs(self, signature_name: str) -> dict[str, Any]:
        if signature_name not in self._signatures:
            raise PredictError(f"Serving signature name: \"{signature_name}\" not found in signature def")
        return self._signatures[signature_name].structured_input_signature[1]

    def _warm_up(self) -> None:
        """Run the default signature once so the first request does not pay for TensorFlow's setup."""
        specs = self._input_specs(DEFAULT_SIGNATURE)
        shapes = {name: spec.shape.as_list() for name, spec in specs.items()}
        if all(shape and None not in shape[1:] for shape in shapes.values()):
            self._run(DEFAULT_SIGNATURE, {
                name: np.zeros([1, *shapes[name][1:]], dtype=spec.dtype.as_numpy_dtype) for name, spec in specs.items()
            })

    def _run(self, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self._signatures[signature_name](**inputs)
        return {name: value.numpy() for name, value in outputs.items()}

    def _tensors(self, specs: dict[str, Any], values: Any, *, rows: bool) -> dict[str, np.ndarray]:
        names = list(specs)
        if rows and values and all(isinstance(v, dict) for v in values):
            columns = {name: [row[name] for row in values] for name in names if all(name in row for row in values)}
        elif isinstance(values, dict):
            columns = values
        elif len(names) == 1:
            columns = {names[0]: values}
        else:
            raise PredictError(f"the signature takes named inputs {names}; send one object per instance")
        missing = sorted(set(names) - set(columns))
        if missing:
            raise PredictError(f"missing input(s) {missing} for the signature inputs {names}")
        try:
            return {name: np.asarray(columns[name], dtype=specs[name].dtype.as_numpy_dtype) for name in names}
        except (ValueError, TypeError) as exc:
            raise PredictError(f"instances do not form tensors of the signature's types: {exc}") from exc

    def predict(self, request: Any) -> dict:
        """The TFS REST predict API on a parsed request body."""
        if not isinstance(request, dict) or ("instances" in request) == ("inputs" in request):
            raise PredictError('the request must be a JSON object with exactly one of "instances" or "inputs"')
        signature_name = request.get("signature_name", DEFAULT_SIGNATURE)
        specs = self._input_specs(signature_name)
        rows = "instances" in request
        inputs = self._tensors(specs, request["instances"] if rows else request["inputs"], rows=rows)
        try:
            outputs = self._run(signature_name, inputs)
        except Exception as exc:  # TF's InvalidArgumentError and friends are client errors in TFS
            raise PredictError(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__) from exc
        if not rows:
            single = next(iter(outputs.values())) if len(outputs) == 1 else None
            return {"outputs": single.tolist() if single is not None else {k: v.tolist() for k, v in outputs.items()}}
        if len(outputs) == 1:
            return {"predictions": next(iter(outputs.values())).tolist()}
        batch = len(next(iter(outputs.values())))
        return {"predictions": [{name: value[i].tolist() for name, value in outputs.items()} for i in range(batch)]}

    def predict_response(self, body: bytes | str) -> requests.Response:
        """What the container's handlers get back from TFS: a requests.Response with TFS's JSON."""
        try:
            status, content = 200, self.predict(json_loads(body))
        except (PredictError, ValueError) as exc:
            status, content = 400, {"error": str(exc)}
        response = requests.Response()
        response.status_code = status
        response._content = json.dumps(content).encode()  # requests' own way to give a Response a body
        response.headers["Content-Type"] = "application/json"
        response.encoding = "utf-8"
        return response


class InferenceService:
    """The container's /invocations: the inference.py handlers around the model."""

    def __init__(self, model_dir: Path, port: int) -> None:
        self.model = Model(latest_version_dir(model_dir))
        self.module = load_inference_module(model_dir / "code")
        self.rest_uri = f"http://127.0.0.1:{port}/v1/models/{MODEL_NAME}:predict"
        self._handler = self._pick_handler()

    def _pick_handler(self) -> Callable[[Any, Context], tuple[Any, str]]:
        module = self.module
        if module is None:
            return lambda data, context: (self.model.predict_response(data.read()).content, "application/json")
        if hasattr(module, "handler"):
            return module.handler

        def chain(data: Any, context: Context) -> tuple[Any, str]:
            request_body = module.input_handler(data, context)
            return module.output_handler(self.model.predict_response(request_body), context)

        return chain

    def context(self, headers: Any, content_length: int) -> Context:
        return Context(
            model_name=MODEL_NAME,
            model_version=self.model.version,
            method="predict",
            rest_uri=self.rest_uri,
            grpc_uri="",  # no gRPC server locally; handlers use rest_uri
            custom_attributes=headers.get("X-Amzn-SageMaker-Custom-Attributes"),
            request_content_type=headers.get("Content-Type", "application/json"),
            accept_header=headers.get("Accept", "application/json"),
            content_length=content_length,
        )

    def invoke(self, body: bytes, context: Context) -> tuple[int, bytes, str]:
        try:
            answer, content_type = self._handler(io.BytesIO(body), context)
        except Exception as exc:  # the handler's error is the caller's answer, as in the container
            logger.warning("handler error: %s: %s", type(exc).__name__, exc)
            error = {"error": str(exc), "error_type": type(exc).__name__}
            return 400, json.dumps(error).encode(), "application/json"
        return 200, answer.encode() if isinstance(answer, str) else bytes(answer), content_type


def make_request_handler(service: InferenceService) -> type[BaseHTTPRequestHandler]:
    predict_path = f"/v1/models/{MODEL_NAME}:predict"

    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are separate writes; no 40 ms delayed-ACK stall

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path == "/ping":
                self._answer(200, b"", "text/plain")
            else:
                self._answer(404, b'{"error": "not found"}', "application/json")

        def do_POST(self) -> None:  # noqa: N802
            body = self._body()
            try:
                if self.path == "/invocations":
                    self._answer(*service.invoke(body, service.context(self.headers, len(body))))
                elif self.path == predict_path:
                    response = service.model.predict_response(body)
                    self._answer(response.status_code, response.content, "application/json")
                else:
                    self._answer(404, b'{"error": "not found"}', "application/json")
            except Exception as exc:  # a fault of this server, not of the handler: 500 and the log
                logger.exception("internal error on %s", self.path)
                self._answer(500, json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode(), "application/json")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (signature of http.server)
            """Requests are not logged one by one: the host's log is for errors."""

    return RequestHandler


def serve(model_dir: Path, port: int) -> None:
    """Load the model, then answer requests until terminated."""
    service = InferenceService(model_dir, port)
    # TensorFlow leaves ~400k tracked objects; a request's JSON makes tens of thousands of lists,
    # which triggers full collections that would walk all of them (measured: ~2x the request time).
    gc.freeze()
    server = ThreadingHTTPServer(("127.0.0.1", port), make_request_handler(service))
    server.daemon_threads = True
    logger.info("serving %s version %s on 127.0.0.1:%d", model_dir, service.model.version, port)
    server.serve_forever()
