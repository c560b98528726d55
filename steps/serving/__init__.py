"""The serving handler shipped in the model artifact as code/inference.py (see steps.artifact)."""
