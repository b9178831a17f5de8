"""Loads PyTorch checkpoints of the reference architectures into the zoo, without PyTorch.

The published CIFAR-100 teachers (mdistiller's `cifar_teachers`, RepDistiller's
`save/models/*_vanilla/ckpt_epoch_240.pth`) are `torch.save` files: pickles whose
tensors live in separate storages. Four modules read and load them:

- `reader`: both file formats (zip, PyTorch >= 1.6; legacy, older files) with the
  standard library and numpy, through
- `unpickler`: the restricted unpickler, which resolves only the globals a tensor
  checkpoint needs and refuses any other before anything is called, like
  `torch.load(weights_only=True)`;
- `mapping`: each Keras variable of a zoo model -> the tensor of the reference
  PyTorch module it comes from, and the layout change;
- `loader`: `load_torch_checkpoint`, which checks every tensor before assigning
  any, and its `TorchCheckpointReport`.

Example:
```python
from r2kd_keras.models import get_model, load_torch_checkpoint

teacher = get_model("resnet32x4", num_classes=100)
print(load_torch_checkpoint(teacher, "resnet32x4_vanilla/ckpt_epoch_240.pth"))
```
"""

from r2kd_keras.models.torch_checkpoint.errors import TorchCheckpointError
from r2kd_keras.models.torch_checkpoint.errors import UnsafeCheckpointError
from r2kd_keras.models.torch_checkpoint.loader import TorchCheckpointReport
from r2kd_keras.models.torch_checkpoint.loader import load_torch_checkpoint
from r2kd_keras.models.torch_checkpoint.reader import read_torch_checkpoint

__all__ = [
    "TorchCheckpointError",
    "TorchCheckpointReport",
    "UnsafeCheckpointError",
    "load_torch_checkpoint",
    "read_torch_checkpoint",
]
