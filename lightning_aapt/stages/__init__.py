"""Training stages, one LightningModule each (docs/architecture.md §5)."""

from lightning_aapt.stages.adaptation import DiffusionAdaptation
from lightning_aapt.stages.adversarial import AdversarialPostTraining
from lightning_aapt.stages.base import StageModule
from lightning_aapt.stages.consistency import ConsistencyDistillation
from lightning_aapt.stages.optim import OptimizerConfig
from lightning_aapt.stages.pretraining import BidirectionalPretraining
from lightning_aapt.stages.randomness import TimestepConfig

__all__ = ["AdversarialPostTraining", "BidirectionalPretraining", "ConsistencyDistillation", "DiffusionAdaptation",
           "OptimizerConfig", "StageModule", "TimestepConfig"]
