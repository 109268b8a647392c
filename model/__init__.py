"""The classifier: MNIST offline, training (TensorFlow, imported only by model.train), the integer reference."""

from model.artifact import DEFAULT_ARTIFACT, FloatWeights, ModelArtifact, load_artifact
from model.config import TrainConfig
from model.data import Mnist, load_mnist
from model.errors import ArtifactError, BountyError, DatasetError
from model.reference import SCHEME, IntegerModel, classify, hidden, logits

__all__ = [
    "DEFAULT_ARTIFACT", "SCHEME", "ArtifactError", "BountyError", "DatasetError", "FloatWeights", "IntegerModel",
    "Mnist", "ModelArtifact", "TrainConfig", "classify", "hidden",
    "load_artifact", "load_mnist", "logits",
]
