"""Celery workers: persist accepted images, retrain, redeploy (imports TensorFlow only inside training)."""

__all__: list[str] = []
