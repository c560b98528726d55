"""The SageMaker pipeline `PredictionsSamayPipeline`: lung-sound features -> model -> gate -> endpoint.

```
 InputDataUrl (manifest.csv)  InputAudioUrl (raw/audio/, sharded)
              \\                 /
            [Preprocess] Processing: librosa log-mel windows, patient-grouped splits
               |  train / validation            \\ test
            [Train]  Training: TensorFlow CNN      \\
               |  model.tar.gz                      |
            [Evaluate] Processing: evaluation.json (PropertyFile EvaluationReport)
               |
            [CheckAccuracy] accuracy >= AccuracyThreshold and accuracy > majority baseline
               | yes                                  | no
            [RegisterModel] SamayLungSoundModels    [Fail] message carries accuracy and threshold
               |
            [Deploy] Lambda samay-deploy: create or update endpoint samay-lung-sound
```

`get_pipeline` only builds the `Pipeline` object (the SDK uploads the step code to S3 when the
definition is rendered); upserting and starting belong to the caller (`samay pipeline ...`, the
notebook, the trigger Lambda). The definition is deterministic: code is staged into a folder named
by its content hash, job names carry no timestamp (`use_custom_job_prefix`), and outputs are written
under `s3://<bucket>/pipelines/<execution-id>/<step>/<output>` (DESIGN 4.3). Two builds of the same
code therefore render byte-identical JSON, and step caching can hit.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache

import boto3

import pipelines.sdk  # noqa: F401  (SDK adjustments must precede its use)
from sagemaker import image_uris
from sagemaker.inputs import TrainingInput
from sagemaker.lambda_helper import Lambda
from sagemaker.model import Model
from sagemaker.model_metrics import MetricsSource, ModelMetrics
from sagemaker.processing import FrameworkProcessor, ProcessingInput, ProcessingOutput
from sagemaker.tensorflow import TensorFlow
from sagemaker.workflow._utils import _RegisterModelStep
from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionGreaterThan, ConditionGreaterThanOrEqualTo
from sagemaker.workflow.execution_variables import ExecutionVariables
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.functions import Join, JsonGet
from sagemaker.workflow.lambda_step import LambdaOutput, LambdaOutputTypeEnum, LambdaStep
from sagemaker.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.pipeline_definition_config import PipelineDefinitionConfig
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.steps import CacheConfig, ProcessingStep, TrainingStep

from lambdas.shared.config import (
    DEPLOY_FUNCTION,
    ENDPOINT_NAME,
    MODEL_PACKAGE_GROUP,
    PIPELINE_NAME,
    SAGEMAKER_ROLE_NAME,
    Settings,
)
from pipelines.staging import staged_steps_dir
from steps.metrics import ACCURACY_JSON_PATH, BASELINE_JSON_PATH
from steps.model import TrainingConfig

# The newest TensorFlow the SDK has training and serving images for (the jobs run TF 2.x
# SavedModel code that is version-agnostic within 2.x); training images of 2.19 are py312 only.
TF_VERSION = "2.19"
PY_VERSION = "py312"
# Image lookup needs a concrete instance family; the instance-type parameters only pick the size.
CPU_IMAGE_INSTANCE = "ml.m5.xlarge"
INFERENCE_INSTANCES = ["ml.m5.large", "ml.m5.xlarge", "ml.c5.large", "ml.c5.xlarge"]
CACHE = CacheConfig(enable_caching=True, expire_after="P30D")
EVALUATION_REPORT = "EvaluationReport"
PROCESSING = "/opt/ml/processing"
RESOURCE_CONFIG = "/opt/ml/config/resourceconfig.json"
PREPROCESS_OUTPUTS = ("train", "validation", "test", "report")
TRAINING = TrainingConfig()  # the script's own defaults: one source for hyperparameters


@dataclass(frozen=True)
class PipelineParameters:
    """Every parameter of the pipeline, declared in one place (DESIGN 4.5)."""

    input_data_url: ParameterString
    input_audio_url: ParameterString
    accuracy_threshold: ParameterFloat
    model_approval_status: ParameterString
    processing_instance_type: ParameterString
    processing_instance_count: ParameterInteger
    training_instance_type: ParameterString
    epochs: ParameterInteger
    ensemble_size: ParameterInteger
    endpoint_instance_type: ParameterString
    min_subjects_per_class: ParameterInteger

    @classmethod
    def declare(cls, bucket: str) -> PipelineParameters:
        return cls(
            # The trigger passes the manifest of each dataset version; the default names the
            # conventional location for a manual run.
            input_data_url=ParameterString("InputDataUrl", default_value=f"s3://{bucket}/datasets/latest/manifest.csv"),
            input_audio_url=ParameterString("InputAudioUrl", default_value=f"s3://{bucket}/raw/audio/"),
            accuracy_threshold=ParameterFloat("AccuracyThreshold", default_value=0.7),
            model_approval_status=ParameterString("ModelApprovalStatus", default_value="Approved"),
            processing_instance_type=ParameterString("ProcessingInstanceType", default_value="ml.m5.xlarge"),
            processing_instance_count=ParameterInteger("ProcessingInstanceCount", default_value=1),
            training_instance_type=ParameterString("TrainingInstanceType", default_value="ml.m5.xlarge"),
            epochs=ParameterInteger("Epochs", default_value=TRAINING.epochs),
            # Models (different seeds) averaged into the one deployed; each one more adds a full training.
            ensemble_size=ParameterInteger("EnsembleSize", default_value=TRAINING.members),
            endpoint_instance_type=ParameterString("EndpointInstanceType", default_value="ml.m5.large"),
            min_subjects_per_class=ParameterInteger("MinSubjectsPerClass", default_value=2),
        )

    def all(self) -> list[ParameterString | ParameterInteger | ParameterFloat]:
        """In declaration order (the order the definition lists them), the objects themselves."""
        return [getattr(self, field.name) for field in fields(self)]


@dataclass(frozen=True)
class _Build:
    """What every step helper needs: where jobs run, as whom, with which code, writing where."""

    session: PipelineSession
    role: str
    code_dir: str
    bucket: str
    prefix: str
    params: PipelineParameters

    def output_uri(self, step: str, output: str) -> Join:
        """`s3://<bucket>/pipelines/<execution-id>/<step>/<output>` (DESIGN 4.3)."""
        return Join(
            on="/", values=["s3:/", self.bucket, "pipelines", ExecutionVariables.PIPELINE_EXECUTION_ID, step, output]
        )


def get_pipeline(
    region: str,
    role: str | None = None,
    default_bucket: str | None = None,
    pipeline_name: str = PIPELINE_NAME,
    base_job_prefix: str = "samay",
    sagemaker_session: PipelineSession | None = None,
) -> Pipeline:
    """Build the pipeline (nothing is created or started).

    `role` defaults to the project's SageMaker execution role in the caller's account and
    `default_bucket` to the project bucket (`SAMAY_BUCKET`); the SDK talks to whatever endpoints
    the standard `AWS_ENDPOINT_URL*` variables name, so the same call targets AWS or the local cloud.
    """
    session = sagemaker_session or pipeline_session(region, default_bucket or Settings.from_env().bucket)
    bucket = session.default_bucket()
    params = PipelineParameters.declare(bucket)
    build = _Build(session, role or default_role(session), str(staged_steps_dir()), bucket, base_job_prefix, params)

    preprocess = _preprocess_step(build)
    train = _train_step(build, preprocess)
    report = PropertyFile(name=EVALUATION_REPORT, output_name="evaluation", path="evaluation.json")
    evaluate = _evaluate_step(build, preprocess, train, report)
    register = _register_step(build, train, evaluate)
    deploy = _deploy_step(build, region, register)
    fail = _fail_step(params, evaluate, report)
    check = _check_accuracy_step(params, evaluate, report, if_steps=[register, deploy], else_steps=[fail])

    return Pipeline(
        name=pipeline_name,
        parameters=params.all(),
        steps=[preprocess, train, evaluate, check],
        sagemaker_session=session,
        pipeline_definition_config=PipelineDefinitionConfig(use_custom_job_prefix=True),
    )


def pipeline_session(region: str, bucket: str) -> PipelineSession:
    """A PipelineSession on a boto3 session for `region` (boto3 reads AWS_ENDPOINT_URL* itself)."""
    return PipelineSession(boto_session=boto3.Session(region_name=region), default_bucket=bucket)


def default_role(session: PipelineSession) -> str:
    """The project's SageMaker execution role in the account of the caller's credentials."""
    account = session.boto_session.client("sts").get_caller_identity()["Account"]
    return f"arn:aws:iam::{account}:role/{SAGEMAKER_ROLE_NAME}"


def _framework_processor(build: _Build, instance_count: ParameterInteger | int, job: str) -> FrameworkProcessor:
    """A processor on the TensorFlow image: librosa comes from steps/requirements.txt at job start."""
    return FrameworkProcessor(
        estimator_cls=TensorFlow,
        framework_version=TF_VERSION,
        py_version=PY_VERSION,
        image_uri=_image_uri(build.session, "training"),
        role=build.role,
        instance_type=build.params.processing_instance_type,
        instance_count=instance_count,
        base_job_name=f"{build.prefix}-{job}",
        sagemaker_session=build.session,
    )


def _image_uri(session: PipelineSession, scope: str) -> str:
    return _tensorflow_image(session.boto_region_name, scope)


@lru_cache(maxsize=None)
def _tensorflow_image(region: str, scope: str) -> str:
    """The AWS Deep Learning Container URI (a pure lookup in the SDK's tables, cached: it is slow)."""
    return image_uris.retrieve(
        "tensorflow",
        region=region,
        version=TF_VERSION,
        py_version=PY_VERSION if scope == "training" else None,
        image_scope=scope,
        instance_type=CPU_IMAGE_INSTANCE,
    )


def _preprocess_step(build: _Build) -> ProcessingStep:
    """Features and patient-grouped splits; the audio is sharded over ProcessingInstanceCount hosts."""
    params = build.params
    processor = _framework_processor(build, params.processing_instance_count, "preprocess")
    step_args = processor.run(
        code="preprocess.py",
        source_dir=build.code_dir,
        dependencies=[build.code_dir],
        inputs=[
            ProcessingInput(
                input_name="manifest", source=params.input_data_url, destination=f"{PROCESSING}/input/manifest"
            ),
            ProcessingInput(
                input_name="audio",
                source=params.input_audio_url,
                destination=f"{PROCESSING}/input/audio",
                s3_data_distribution_type="ShardedByS3Key",
            ),
        ],
        outputs=[
            ProcessingOutput(
                output_name=name,
                source=f"{PROCESSING}/output/{name}",
                destination=build.output_uri("Preprocess", name),
            )
            for name in PREPROCESS_OUTPUTS
        ],
        # Every container path is passed explicitly (the scripts' defaults are the same paths): a
        # runner without /opt/ml, like the local cloud's, remaps what it can see in the arguments.
        arguments=[
            "--manifest-dir", f"{PROCESSING}/input/manifest",
            "--audio-dir", f"{PROCESSING}/input/audio",
            "--output-dir", f"{PROCESSING}/output",
            "--resource-config", RESOURCE_CONFIG,
            "--min-subjects-per-class", params.min_subjects_per_class.to_string(),
        ],
    )
    return ProcessingStep(name="Preprocess", step_args=step_args, cache_config=CACHE)


def _train_step(build: _Build, preprocess: ProcessingStep) -> TrainingStep:
    estimator = TensorFlow(
        entry_point="train.py",
        source_dir=build.code_dir,
        dependencies=[build.code_dir],
        framework_version=TF_VERSION,
        py_version=PY_VERSION,
        image_uri=_image_uri(build.session, "training"),
        role=build.role,
        instance_type=build.params.training_instance_type,
        instance_count=1,
        base_job_name=f"{build.prefix}-train",
        output_path=build.output_uri("Train", "model"),
        # No S3 checkpoint dir: train.py writes SM_MODEL_DIR; an S3 model_dir would carry a job name.
        model_dir=False,
        disable_profiler=True,
        debugger_hook_config=False,
        hyperparameters={
            "epochs": build.params.epochs,
            "members": build.params.ensemble_size,
            "batch-size": TRAINING.batch_size,
            "learning-rate": TRAINING.learning_rate,
            "seed": TRAINING.seed,
        },
        sagemaker_session=build.session,
    )
    outputs = preprocess.properties.ProcessingOutputConfig.Outputs
    step_args = estimator.fit(
        inputs={
            channel: TrainingInput(s3_data=outputs[channel].S3Output.S3Uri) for channel in ("train", "validation")
        }
    )
    return TrainingStep(name="Train", step_args=step_args, cache_config=CACHE)


def _evaluate_step(build: _Build, preprocess: ProcessingStep, train: TrainingStep, report: PropertyFile) -> ProcessingStep:
    """Scores the test patients only; evaluation.json becomes the EvaluationReport property file."""
    processor = _framework_processor(build, 1, "evaluate")
    step_args = processor.run(
        code="evaluate.py",
        source_dir=build.code_dir,
        dependencies=[build.code_dir],
        inputs=[
            ProcessingInput(
                input_name="model",
                source=train.properties.ModelArtifacts.S3ModelArtifacts,
                destination=f"{PROCESSING}/model",
            ),
            ProcessingInput(
                input_name="test",
                source=preprocess.properties.ProcessingOutputConfig.Outputs["test"].S3Output.S3Uri,
                destination=f"{PROCESSING}/test",
            ),
        ],
        outputs=[
            ProcessingOutput(
                output_name="evaluation",
                source=f"{PROCESSING}/evaluation",
                destination=build.output_uri("Evaluate", "evaluation"),
            )
        ],
        arguments=[
            "--model-dir", f"{PROCESSING}/model",
            "--test-dir", f"{PROCESSING}/test",
            "--output-dir", f"{PROCESSING}/evaluation",
        ],
    )
    return ProcessingStep(name="Evaluate", step_args=step_args, property_files=[report], cache_config=CACHE)


def _metric(evaluate: ProcessingStep, report: PropertyFile, json_path: str) -> JsonGet:
    return JsonGet(step_name=evaluate.name, property_file=report, json_path=json_path)


def _check_accuracy_step(
    params: PipelineParameters, evaluate: ProcessingStep, report: PropertyFile, if_steps: list, else_steps: list
) -> ConditionStep:
    """The gate: good enough in absolute terms AND better than always answering the majority class."""
    accuracy = _metric(evaluate, report, ACCURACY_JSON_PATH)
    return ConditionStep(
        name="CheckAccuracy",
        conditions=[
            ConditionGreaterThanOrEqualTo(left=accuracy, right=params.accuracy_threshold),
            ConditionGreaterThan(left=accuracy, right=_metric(evaluate, report, BASELINE_JSON_PATH)),
        ],
        if_steps=if_steps,
        else_steps=else_steps,
    )


def _register_step(build: _Build, train: TrainingStep, evaluate: ProcessingStep) -> _RegisterModelStep:
    """Register the artifact as-is (it carries its own code/inference.py) with its evaluation attached.

    Built from `_RegisterModelStep`, the step class ModelStep wraps, because ModelStep always
    suffixes the name ("X-RegisterModel"); DESIGN 4.5 names this step `RegisterModel`.
    """
    evaluation_uri = evaluate.properties.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri
    model = Model(
        image_uri=_image_uri(build.session, "inference"),
        model_data=train.properties.ModelArtifacts.S3ModelArtifacts,
        role=build.role,
        sagemaker_session=build.session,
    )
    step_args = model.register(
        content_types=["audio/wav"],
        response_types=["application/json"],
        inference_instances=INFERENCE_INSTANCES,
        transform_instances=INFERENCE_INSTANCES,
        model_package_group_name=MODEL_PACKAGE_GROUP,
        approval_status=build.params.model_approval_status,
        model_metrics=ModelMetrics(
            model_statistics=MetricsSource(
                content_type="application/json", s3_uri=Join(on="/", values=[evaluation_uri, "evaluation.json"])
            )
        ),
        description="Lung-sound classifier (log-mel CNN) trained by PredictionsSamayPipeline",
    )
    return _RegisterModelStep(name="RegisterModel", step_args=step_args.create_model_package_request)


def _deploy_step(build: _Build, region: str, register: _RegisterModelStep) -> LambdaStep:
    """samay-deploy in the role's account; the endpoint's model runs as the pipeline's role."""
    account = build.role.split(":")[4]
    function_arn = f"arn:aws:lambda:{region}:{account}:function:{DEPLOY_FUNCTION}"
    return LambdaStep(
        name="Deploy",
        lambda_func=Lambda(function_arn=function_arn, session=build.session),
        inputs={
            "model_package_arn": register.properties.ModelPackageArn,
            "endpoint_name": ENDPOINT_NAME,
            "instance_type": build.params.endpoint_instance_type,
            "role_arn": build.role,
        },
        outputs=[
            LambdaOutput(output_name=name, output_type=LambdaOutputTypeEnum.String)
            for name in ("endpoint_name", "endpoint_config_name", "model_name", "action")
        ],
    )


def _fail_step(params: PipelineParameters, evaluate: ProcessingStep, report: PropertyFile) -> FailStep:
    return FailStep(
        name="Fail",
        error_message=Join(
            on="",
            values=[
                f"Model rejected: {ACCURACY_JSON_PATH} = ",
                _metric(evaluate, report, ACCURACY_JSON_PATH),
                ", needs >= AccuracyThreshold = ",
                params.accuracy_threshold,
                f" and > {BASELINE_JSON_PATH} (majority class) = ",
                _metric(evaluate, report, BASELINE_JSON_PATH),
            ],
        ),
    )
