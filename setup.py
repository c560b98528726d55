"""Samay lung-sound MLOps: Kinesis ingestion -> SageMaker pipeline -> endpoint -> predictions.

Exact versions live in constraints.txt (`pip install -c constraints.txt -e .[dev]`); the ranges
here are what the code is written against.
"""
from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "sagemaker>=2.257,<3",
    "tensorflow-cpu==2.21.*",
    "librosa>=0.11,<0.12",
    "soundfile>=0.13,<0.15",
    "soxr>=0.5,<2",
    "numpy>=1.26,<3",
    "scipy>=1.11,<2",
    "scikit-learn>=1.5,<2",
    "pandas>=2.2,<4",
    "boto3>=1.35,<2",
    "moto[server]>=5.1,<6",
    "aws-lambda-powertools>=3.0,<4",
    "pydantic>=2.7,<3",
    "typer>=0.12,<1",
    "rich>=13,<15",
    "flask>=3,<4",
    "werkzeug>=3,<4",
    "requests>=2.31,<3",
    "packaging>=23",
    "orjson>=3.9,<4",
    "pyyaml>=6,<7",
    "plotly>=6,<8",
]

EXTRAS = {
    "test": [
        "pytest>=8,<10",
        "pytest-timeout>=2.3,<3",
        "awscli>=1.33,<2",
    ],
    "lint": [
        "cfn-lint>=1.20,<2",
        "checkov>=3.1,<4",
    ],
    "notebook": [
        "nbclient>=0.10,<1",
        "nbformat>=5.10,<6",
        "ipykernel>=6.29,<8",
        "matplotlib>=3.8,<4",
    ],
}
EXTRAS["dev"] = sorted({req for reqs in EXTRAS.values() for req in reqs})

setup(
    name="samay-lung-mlops",
    version="0.1.0",
    description="Lung-sound recordings to a deployed, monitored respiratory-disease classifier",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["pipelines*", "steps*", "lambdas*", "infra*"]),
    include_package_data=True,
    package_data={"steps": ["requirements.txt"], "pipelines": ["*.yaml"], "infra": ["*.yaml", "quicksight/*"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["samay=pipelines.cli:main"]},
)
