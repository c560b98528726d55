"""State of the local SageMaker service, split by resource family (as moto's models.py)."""
from infra.local.sagemaker.models.backend import BackendDict, SageMakerBackend

__all__ = ["BackendDict", "SageMakerBackend"]
