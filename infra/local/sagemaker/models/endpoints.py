"""Models, endpoint configs and endpoints; endpoints are served by live hosts (see hosting.py).

Endpoint status: Creating -> InService once its host answers (Failed with FailureReason if the host
cannot start); Updating -> InService after the new host has replaced the old one (an update whose
new host fails leaves the old one serving, InService, with the FailureReason, as AWS rolls back).
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from infra.local.sagemaker.exceptions import (
    ModelError,
    RuntimeValidationError,
    ServiceUnavailable,
    ValidationException,
)
from infra.local.sagemaker.hosting import EndpointHosts
from infra.local.sagemaker.models.base import Record, make_arn, name_of, now, page, public, require

logger = logging.getLogger(__name__)


class EndpointsMixin:
    """State of Model, EndpointConfig and Endpoint resources; mixed into SageMakerBackend."""

    models: dict[str, Record]
    endpoint_configs: dict[str, Record]
    endpoints: dict[str, Record]
    hosts: EndpointHosts

    # ---- models ------------------------------------------------------------------------

    def create_model(self, model_name: str, primary_container: Record | None = None,
                     containers: list[Record] | None = None, execution_role_arn: str | None = None,
                     tags: list[dict[str, str]] | None = None, enable_network_isolation: bool = False,
                     **_ignored: Any) -> Record:
        require(model_name, "modelName")
        declared = [primary_container] if primary_container else list(containers or [])
        if not declared:
            raise ValidationException("CreateModel needs PrimaryContainer or Containers")
        with self.lock:
            arn = make_arn(self.region, self.account, "model", model_name)
            if model_name.lower() in self.models:
                raise ValidationException(f'Cannot create already existing model "{arn}".')
            resolved = [self._resolve_container(container) for container in declared]
            record = {
                "ModelName": model_name,
                "ModelArn": arn,
                "ExecutionRoleArn": execution_role_arn or "",
                "CreationTime": now(),
                "EnableNetworkIsolation": bool(enable_network_isolation),
                **({"PrimaryContainer": resolved[0]} if primary_container else {"Containers": resolved}),
                "_model_data_url": resolved[0].get("ModelDataUrl"),
            }
            self.models[model_name.lower()] = record
            self._tag(arn, tags)
            self._save()
        return {"ModelArn": arn}

    def describe_model(self, model_name: str) -> Record:
        with self.lock:
            return public(self._model(model_name))

    def delete_model(self, model_name: str) -> Record:
        with self.lock:
            del self.models[self._model(model_name)["ModelName"].lower()]
            self._save()
        return {}

    def list_models(self, name_contains: str | None = None, sort_order: str | None = None,
                    max_results: int | None = None, next_token: str | None = None, **_ignored: Any) -> Record:
        with self.lock:
            rows = [{key: model[key] for key in ("ModelName", "ModelArn", "CreationTime")}
                    for model in self.models.values() if (name_contains or "").lower() in model["ModelName"].lower()]
        return page(rows, "Models", max_results=max_results, next_token=next_token, sort_by="CreationTime",
                    sort_order=sort_order, default_order="Descending")

    # ---- endpoint configs ----------------------------------------------------------------

    def create_endpoint_config(self, endpoint_config_name: str, production_variants: list[Record],
                               tags: list[dict[str, str]] | None = None, **_ignored: Any) -> Record:
        require(endpoint_config_name, "endpointConfigName")
        require(production_variants, "productionVariants")
        with self.lock:
            arn = make_arn(self.region, self.account, "endpoint-config", endpoint_config_name)
            if endpoint_config_name.lower() in self.endpoint_configs:
                raise ValidationException(f'Cannot create already existing endpoint configuration "{arn}".')
            for variant in production_variants:
                self._model(require(variant.get("ModelName"), "productionVariants.member.modelName"))
            self.endpoint_configs[endpoint_config_name.lower()] = {
                "EndpointConfigName": endpoint_config_name,
                "EndpointConfigArn": arn,
                "ProductionVariants": production_variants,
                "CreationTime": now(),
            }
            self._tag(arn, tags)
            self._save()
        return {"EndpointConfigArn": arn}

    def describe_endpoint_config(self, endpoint_config_name: str) -> Record:
        with self.lock:
            return public(self._endpoint_config(endpoint_config_name))

    def delete_endpoint_config(self, endpoint_config_name: str) -> Record:
        with self.lock:
            del self.endpoint_configs[self._endpoint_config(endpoint_config_name)["EndpointConfigName"].lower()]
            self._save()
        return {}

    # ---- endpoints -----------------------------------------------------------------------

    def create_endpoint(self, endpoint_name: str, endpoint_config_name: str,
                        tags: list[dict[str, str]] | None = None, **_ignored: Any) -> Record:
        require(endpoint_name, "endpointName")
        with self.lock:
            self._endpoint_config(endpoint_config_name)
            arn = make_arn(self.region, self.account, "endpoint", endpoint_name)
            if endpoint_name.lower() in self.endpoints:
                raise ValidationException(f'Cannot create already existing endpoint "{arn}".')
            created = now()
            self.endpoints[endpoint_name.lower()] = {
                "EndpointName": endpoint_name,
                "EndpointArn": arn,
                "EndpointConfigName": endpoint_config_name,
                "EndpointStatus": "Creating",
                "CreationTime": created,
                "LastModifiedTime": created,
            }
            self._tag(arn, tags)
            self._save()
        self._notify("Endpoint", arn, "Creating")
        self._deploy_in_background(endpoint_name, endpoint_config_name)
        return {"EndpointArn": arn}

    def update_endpoint(self, endpoint_name: str, endpoint_config_name: str, **_ignored: Any) -> Record:
        with self.lock:
            record = self._endpoint(endpoint_name)
            self._endpoint_config(endpoint_config_name)
            if record["EndpointStatus"] != "InService":
                raise ValidationException(
                    f"Cannot update in-progress endpoint \"{record['EndpointArn']}\" (status {record['EndpointStatus']}).")
        self.set_endpoint_status(endpoint_name, "Updating", PendingDeploymentSummary={
            "EndpointConfigName": endpoint_config_name, "StartTime": now()})
        self._deploy_in_background(endpoint_name, endpoint_config_name)
        return {"EndpointArn": record["EndpointArn"]}

    def describe_endpoint(self, endpoint_name: str) -> Record:
        with self.lock:
            return public(self._endpoint(endpoint_name))

    def list_endpoints(self, name_contains: str | None = None, status_equals: str | None = None,
                       sort_by: str | None = None, sort_order: str | None = None, max_results: int | None = None,
                       next_token: str | None = None, **_ignored: Any) -> Record:
        fields = ("EndpointName", "EndpointArn", "CreationTime", "LastModifiedTime", "EndpointStatus")
        with self.lock:
            rows = [{key: endpoint[key] for key in fields} for endpoint in self.endpoints.values()
                    if (name_contains or "").lower() in endpoint["EndpointName"].lower()
                    and status_equals in (None, endpoint["EndpointStatus"])]
        sort_key = {"Name": "EndpointName", "Status": "EndpointStatus"}.get(sort_by or "", "CreationTime")
        return page(rows, "Endpoints", max_results=max_results, next_token=next_token, sort_by=sort_key,
                    sort_order=sort_order, default_order="Descending")

    def delete_endpoint(self, endpoint_name: str) -> Record:
        with self.lock:
            record = self._endpoint(endpoint_name)
            del self.endpoints[record["EndpointName"].lower()]
            self._save()
        self.hosts.stop(record["EndpointArn"])
        self._notify("Endpoint", record["EndpointArn"], "Deleting")
        return {}

    def invoke_endpoint(self, endpoint_name: str, body: bytes, content_type: str, accept: str | None) -> tuple[bytes, str]:
        """The model's answer body and content type (runtime InvokeEndpoint)."""
        with self.lock:
            record = self.endpoints.get(endpoint_name.lower())
        try:
            answer = self.hosts.invoke(record["EndpointArn"], body, content_type, accept) if record else None
        except Exception as err:  # the host process died or hung: retryable, as a container restart is on AWS
            logger.exception("endpoint %s: host did not answer", endpoint_name)
            raise ServiceUnavailable(f"Endpoint {endpoint_name} did not answer: {err}") from None
        if answer is None:
            raise RuntimeValidationError(f"Endpoint {endpoint_name} of account {self.account} not found.")
        status, payload, answer_type = answer
        if 200 <= status < 300:
            return payload, answer_type
        text = payload.decode("utf-8", errors="replace")
        side = "client" if status < 500 else "server"
        raise ModelError(f'Received {side} error ({status}) from primary with message "{text}". ',
                         original_status=status, original_message=text)

    def set_endpoint_status(self, endpoint_name: str, status: str, failure_reason: str | None = None,
                            **fields: Any) -> None:
        """The one place an endpoint's status changes; `fields` (config, variants) change with it."""
        with self.lock:
            record = self.endpoints.get(endpoint_name.lower())
            if record is None:  # deleted while its host was starting
                return
            if status != "Updating":  # the update it described has landed or been rolled back
                record.pop("PendingDeploymentSummary", None)
            record.update(fields, EndpointStatus=status, LastModifiedTime=now())
            if failure_reason:
                record["FailureReason"] = failure_reason[:1024]
            else:
                record.pop("FailureReason", None)
            self._save()
        self._notify("Endpoint", record["EndpointArn"], status)

    def rehost_endpoints(self) -> None:
        """After a restart, start hosts again for the endpoints that were serving."""
        with self.lock:
            serving = [(record["EndpointName"], record["EndpointConfigName"]) for record in self.endpoints.values()
                       if record["EndpointStatus"] in ("InService", "Updating", "Creating")]
        for name, config in serving:
            self.set_endpoint_status(name, "Updating")
            self._deploy_in_background(name, config)

    def _deploy_in_background(self, endpoint_name: str, config_name: str) -> None:
        threading.Thread(target=self._deploy, args=(endpoint_name, config_name),
                         name=f"deploy-{endpoint_name}", daemon=True).start()

    def _deploy(self, endpoint_name: str, config_name: str) -> None:
        with self.lock:
            record = self._endpoint(endpoint_name)
            arn, creating = record["EndpointArn"], record["EndpointStatus"] == "Creating"
            config = self._endpoint_config(config_name)
            variant = config["ProductionVariants"][0]
            model = self._model(variant["ModelName"])
            model_data_url = model.get("_model_data_url")
            image = (model.get("PrimaryContainer") or model.get("Containers", [{}])[0]).get("Image", "")
        try:
            if not model_data_url:
                raise ValueError(f"model {variant['ModelName']} has no ModelDataUrl to serve")
            slot = self.hosts.start(arn, model_data_url)
        except Exception as err:  # the host's own failure, whatever its type, becomes the FailureReason
            logger.exception("endpoint %s: host for %s did not start", endpoint_name, model_data_url)
            reason = f"Endpoint host failed to start for {model_data_url}: {err}"
            self.set_endpoint_status(endpoint_name, "Failed" if creating else "InService", reason)
            return
        with self.lock:
            deleted = endpoint_name.lower() not in self.endpoints
        if deleted:
            self.hosts.discard(slot)
            return
        self.hosts.activate(arn, slot)
        self.set_endpoint_status(endpoint_name, "InService", EndpointConfigName=config_name,
                                 ProductionVariants=[_variant_summary(variant, image)])

    def _resolve_container(self, container: Record) -> Record:
        """A container as stored: a ModelPackageName is resolved to the package's image and artifact."""
        if not container.get("ModelPackageName"):
            return dict(container)
        package = self.get_model_package(container["ModelPackageName"])
        spec = package.get("InferenceSpecification", {}).get("Containers", [{}])[0]
        return {**container, "Image": spec.get("Image", ""), "ModelDataUrl": spec.get("ModelDataUrl")}

    def _model(self, name_or_arn: str) -> Record:
        record = self.models.get(name_of(name_or_arn).lower())
        if record is None:
            raise ValidationException(f'Could not find model "{make_arn(self.region, self.account, "model", name_of(name_or_arn))}".')
        return record

    def _endpoint_config(self, name_or_arn: str) -> Record:
        require(name_or_arn, "endpointConfigName")
        record = self.endpoint_configs.get(name_of(name_or_arn).lower())
        if record is None:
            arn = make_arn(self.region, self.account, "endpoint-config", name_of(name_or_arn))
            raise ValidationException(f'Could not find endpoint configuration "{arn}".')
        return record

    def _endpoint(self, name_or_arn: str) -> Record:
        require(name_or_arn, "endpointName")
        record = self.endpoints.get(name_of(name_or_arn).lower())
        if record is None:
            arn = make_arn(self.region, self.account, "endpoint", name_of(name_or_arn))
            raise ValidationException(f'Could not find endpoint "{arn}".')
        return record


def _variant_summary(variant: Record, image: str) -> Record:
    count = int(variant.get("InitialInstanceCount", 1))
    weight = float(variant.get("InitialVariantWeight", 1.0))
    return {
        "VariantName": variant.get("VariantName", "AllTraffic"),
        "DeployedImages": [{"SpecifiedImage": image, "ResolvedImage": image, "ResolutionTime": now()}],
        "CurrentWeight": weight,
        "DesiredWeight": weight,
        "CurrentInstanceCount": count,
        "DesiredInstanceCount": count,
    }
