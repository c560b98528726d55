"""The local SageMaker service (DESIGN 4.9): protocol (responses), state (models), executor, hosts.

Run it with `python -m infra.local.sagemaker --port P --state-dir D`, or host `create_app(state_dir)`.
"""
