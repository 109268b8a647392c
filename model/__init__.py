"""The classifier and the judge: MNIST offline, training (TensorFlow, imported only by model.train and
model.judge_train), the integer reference, the numpy judge."""

from model.artifact import DEFAULT_ARTIFACT, FloatWeights, ModelArtifact, load_artifact
from model.config import TrainConfig
from model.data import Mnist, load_mnist
from model.errors import ArtifactError, BountyError, DatasetError
from model.judge import DEFAULT_JUDGE, Judge, Thresholds, Verdict, load_judge
from model.reference import SCHEME, IntegerModel, classify, hidden, logits

__all__ = [
    "DEFAULT_ARTIFACT", "DEFAULT_JUDGE", "SCHEME", "ArtifactError", "BountyError", "DatasetError", "FloatWeights",
    "IntegerModel", "Judge", "Mnist", "ModelArtifact", "Thresholds", "TrainConfig", "Verdict", "classify", "hidden",
    "load_artifact", "load_judge", "load_mnist", "logits",
]
