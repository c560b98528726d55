"""Model registry: model package groups and their versioned model packages (1..n per group)."""
from __future__ import annotations

from typing import Any

from infra.local.sagemaker.exceptions import ResourceNotFound, ValidationException
from infra.local.sagemaker.models.base import Record, make_arn, name_of, now, page, public, require

APPROVAL_STATUSES = ("Approved", "Rejected", "PendingManualApproval")
# Fields of CreateModelPackage kept as given (the SDK's RegisterModel step sends these).
_KEPT_FIELDS = (
    "ModelPackageDescription", "InferenceSpecification", "ModelMetrics", "MetadataProperties",
    "CustomerMetadataProperties", "DriftCheckBaselines", "Domain", "Task", "SamplePayloadUrl",
    "AdditionalInferenceSpecifications", "SkipModelValidation", "SourceUri", "ModelCard",
    "ModelLifeCycle", "ValidationSpecification",
)


class RegistryMixin:
    """State of ModelPackageGroup and ModelPackage resources; mixed into SageMakerBackend."""

    model_package_groups: dict[str, Record]
    model_packages: dict[str, Record]  # by ARN

    def create_model_package_group(self, model_package_group_name: str,
                                   model_package_group_description: str | None = None,
                                   tags: list[dict[str, str]] | None = None) -> Record:
        require(model_package_group_name, "modelPackageGroupName")
        with self.lock:
            if model_package_group_name.lower() in self.model_package_groups:
                raise ValidationException(f"Model Package Group already exists: {self._group_arn(model_package_group_name)}")
            record = {
                "ModelPackageGroupName": model_package_group_name,
                "ModelPackageGroupArn": self._group_arn(model_package_group_name),
                "ModelPackageGroupDescription": model_package_group_description or "",
                "CreationTime": now(),
                "ModelPackageGroupStatus": "Completed",
            }
            self.model_package_groups[model_package_group_name.lower()] = record
            self._tag(record["ModelPackageGroupArn"], tags)
            self._save()
        return {"ModelPackageGroupArn": record["ModelPackageGroupArn"]}

    def describe_model_package_group(self, model_package_group_name: str) -> Record:
        with self.lock:
            return public(self._group(model_package_group_name))

    def list_model_package_groups(self, name_contains: str | None = None, sort_by: str | None = None,
                                  sort_order: str | None = None, max_results: int | None = None,
                                  next_token: str | None = None, **_ignored: Any) -> Record:
        with self.lock:
            rows = [public(group) for group in self.model_package_groups.values()
                    if (name_contains or "").lower() in group["ModelPackageGroupName"].lower()]
        sort_key = "ModelPackageGroupName" if sort_by == "Name" else "CreationTime"
        return page(rows, "ModelPackageGroupSummaryList", max_results=max_results, next_token=next_token,
                    sort_by=sort_key, sort_order=sort_order)

    def delete_model_package_group(self, model_package_group_name: str) -> Record:
        with self.lock:
            group = self._group(model_package_group_name)
            if any(package["ModelPackageGroupName"] == group["ModelPackageGroupName"]
                   for package in self.model_packages.values()):
                raise ValidationException(
                    f"Model Package Group {group['ModelPackageGroupName']} still holds model packages; delete them first")
            del self.model_package_groups[group["ModelPackageGroupName"].lower()]
            self._save()
        return {}

    def create_model_package(self, model_package_group_name: str | None = None,
                             model_approval_status: str | None = None, **fields: Any) -> Record:
        if not model_package_group_name:
            raise ValidationException("Only versioned model packages are supported locally: give ModelPackageGroupName")
        status = model_approval_status or "PendingManualApproval"
        _check_approval_status(status)
        with self.lock:
            group = self._group(model_package_group_name)
            name = group["ModelPackageGroupName"]
            version = 1 + sum(1 for package in self.model_packages.values() if package["ModelPackageGroupName"] == name)
            created = now()
            arn = make_arn(self.region, self.account, "model-package", f"{name}/{version}")
            record = {
                "ModelPackageName": name,
                "ModelPackageGroupName": name,
                "ModelPackageVersion": version,
                "ModelPackageArn": arn,
                "CreationTime": created,
                "LastModifiedTime": created,
                "ModelPackageStatus": "Completed",
                "ModelApprovalStatus": status,
                "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
                "CertifyForMarketplace": False,
                **{_pascal(key): value for key, value in fields.items() if _pascal(key) in _KEPT_FIELDS},
            }
            self.model_packages[arn] = record
            self._tag(arn, fields.get("tags"))
            self._save()
        self._notify("ModelPackage", arn, status)
        return {"ModelPackageArn": arn}

    def describe_model_package(self, model_package_name: str) -> Record:
        with self.lock:
            return public(self.get_model_package(model_package_name))

    def list_model_packages(self, model_package_group_name: str | None = None,
                            model_approval_status: str | None = None, name_contains: str | None = None,
                            sort_by: str | None = None, sort_order: str | None = None,
                            max_results: int | None = None, next_token: str | None = None,
                            **_ignored: Any) -> Record:
        group = name_of(model_package_group_name).lower() if model_package_group_name else None
        fields = ("ModelPackageName", "ModelPackageGroupName", "ModelPackageVersion", "ModelPackageArn",
                  "ModelPackageDescription", "CreationTime", "ModelPackageStatus", "ModelApprovalStatus")
        with self.lock:
            rows = [
                {key: package[key] for key in fields if key in package}
                for package in self.model_packages.values()
                if group in (None, package["ModelPackageGroupName"].lower())
                and model_approval_status in (None, package["ModelApprovalStatus"])
                and (name_contains or "").lower() in package["ModelPackageName"].lower()
            ]
        sort_key = "ModelPackageName" if sort_by == "Name" else "CreationTime"
        return page(rows, "ModelPackageSummaryList", max_results=max_results, next_token=next_token,
                    sort_by=sort_key, sort_order=sort_order)

    def update_model_package(self, model_package_arn: str, model_approval_status: str | None = None,
                             approval_description: str | None = None,
                             customer_metadata_properties: dict[str, str] | None = None,
                             customer_metadata_properties_to_remove: list[str] | None = None,
                             **_ignored: Any) -> Record:
        if model_approval_status:
            _check_approval_status(model_approval_status)
        with self.lock:
            record = self.get_model_package(model_package_arn)
            if approval_description is not None:
                record["ApprovalDescription"] = approval_description
            metadata = {**record.get("CustomerMetadataProperties", {}), **(customer_metadata_properties or {})}
            for key in customer_metadata_properties_to_remove or []:
                metadata.pop(key, None)
            if metadata:
                record["CustomerMetadataProperties"] = metadata
            record["LastModifiedTime"] = now()
            self._save()
        if model_approval_status:
            self.set_model_package_status(record["ModelPackageArn"], model_approval_status)
        return {"ModelPackageArn": record["ModelPackageArn"]}

    def set_model_package_status(self, arn: str, approval_status: str) -> None:
        """The one place a package's approval status changes (announced as a ModelPackage status)."""
        with self.lock:
            record = self.get_model_package(arn)
            record["ModelApprovalStatus"] = approval_status
            record["LastModifiedTime"] = now()
            self._save()
        self._notify("ModelPackage", arn, approval_status)

    def get_model_package(self, name_or_arn: str) -> Record:
        require(name_or_arn, "modelPackageName")
        record = self.model_packages.get(name_or_arn) or self.model_packages.get(name_or_arn.lower())
        if record is None:
            raise ResourceNotFound(f"ModelPackage {name_or_arn} does not exist.")
        return record

    def _group(self, name_or_arn: str) -> Record:
        require(name_or_arn, "modelPackageGroupName")
        record = self.model_package_groups.get(name_of(name_or_arn).lower())
        if record is None:
            raise ResourceNotFound(f"ModelPackageGroup {name_or_arn} does not exist.")
        return record

    def _group_arn(self, name: str) -> str:
        return make_arn(self.region, self.account, "model-package-group", name)


def _check_approval_status(status: str) -> None:
    if status not in APPROVAL_STATUSES:
        raise ValidationException(
            f"ModelApprovalStatus '{status}' is not one of {', '.join(APPROVAL_STATUSES)}")


def _pascal(snake: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in snake.split("_"))
