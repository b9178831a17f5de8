"""Magnitude pruning for Keras 3 models.

`tfmot.sparsity.keras`'s API and step semantics, native to Keras 3 (tfmot
0.8.1 refuses Keras 3 models and switches the process to Keras 2), plus the
one-shot teacher pruning of R2KD.
"""

from r2kd_keras.pruning.callbacks import PruningSummaries
from r2kd_keras.pruning.callbacks import UpdatePruningStep
from r2kd_keras.pruning.channels import ChannelGraph
from r2kd_keras.pruning.filter_wrapper import PruneFilters
from r2kd_keras.pruning.filters import prune_filters
from r2kd_keras.pruning.magnitude import PrunableLayer
from r2kd_keras.pruning.magnitude import magnitude_mask
from r2kd_keras.pruning.magnitude import prunable_kernels
from r2kd_keras.pruning.magnitude import prune_teacher
from r2kd_keras.pruning.prune import PruneForLatencyOnXNNPack
from r2kd_keras.pruning.prune import PruningPolicy
from r2kd_keras.pruning.prune import prune_low_magnitude
from r2kd_keras.pruning.prune import prune_scope
from r2kd_keras.pruning.schedules import ConstantSparsity
from r2kd_keras.pruning.schedules import PolynomialDecay
from r2kd_keras.pruning.schedules import PruningSchedule
from r2kd_keras.pruning.shrinking import finalize
from r2kd_keras.pruning.shrinking import shrink
from r2kd_keras.pruning.structure import prune_for_structure
from r2kd_keras.pruning.strip import get_sparsity
from r2kd_keras.pruning.strip import strip_pruning
from r2kd_keras.pruning.wrapper import PruneLowMagnitude
from r2kd_keras.pruning.wrapper import apply_pruning_masks
from r2kd_keras.pruning.wrapper import begin_pruning_step
from r2kd_keras.pruning.wrapper import pruning_wrappers
