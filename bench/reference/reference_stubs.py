"""Empty stand-ins for modules vilbert/utils.py imports at module level but never uses
for a forward pass (S3 downloads, progress bars, TensorBoard), so that the reference's
vilbert/vilbert.py imports on a machine without them."""
import sys
import types


def stub_modules():
    for name in ["boto3", "requests", "botocore", "botocore.exceptions", "tqdm", "tensorboardX"]:
        module = types.ModuleType(name)
        module.ClientError = Exception
        module.tqdm = lambda *a, **k: None
        module.SummaryWriter = object
        sys.modules.setdefault(name, module)
