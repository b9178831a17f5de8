"""Distillation losses on logits: R2KD's correlation and rank terms, and the
KD, DIST and DKD baselines, as pure `keras.ops` functions.

Every function takes `(student_logits, teacher_logits, ...)` of shape
`(batch, classes)` and returns a scalar averaged over the batch. Terms that
look across the batch (R2KD's and DIST's per-class column terms) are over the
batch they are given: under `tf.distribute`, pass logits gathered across
replicas (`R2KDDistiller` does this) or the term is a per-replica estimate.

Each function has a `keras.losses.Loss` wrapper taking
`(y_true=teacher_logits, y_pred=student_logits)`, and `CorrelationDistillation`
plugs R2KD into `keras.distillation.Distiller`. One module per method, each
function next to its wrapper; `_common` holds what they share.
"""

from r2kd_keras.losses._common import COSINE_EPS
from r2kd_keras.losses._common import cosine_per_row
from r2kd_keras.losses.dist import DISTLoss
from r2kd_keras.losses.dist import dist_loss
from r2kd_keras.losses.dkd import DKDLoss
from r2kd_keras.losses.dkd import dkd_loss
from r2kd_keras.losses.kd import KDLoss
from r2kd_keras.losses.kd import kd_loss
from r2kd_keras.losses.r2kd import RANK_MODES
from r2kd_keras.losses.r2kd import CorrelationDistillation
from r2kd_keras.losses.r2kd import CorrelationValueLoss
from r2kd_keras.losses.r2kd import R2KDLoss
from r2kd_keras.losses.r2kd import SpearmanRankLoss
from r2kd_keras.losses.r2kd import correlation_value_loss
from r2kd_keras.losses.r2kd import r2kd_loss
from r2kd_keras.losses.r2kd import spearman_rank_loss
