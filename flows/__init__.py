"""Orchestration: the Prefect flow that runs dvc.yaml's stages, its deployment, and the CLI."""
