# RAdam vectors from the reference optimizer (vilbert/optimization.py): 8 steps of two
# parameter groups with different lrs, writing the parameters after each step.
# Usage: VILBERT_REFERENCE_DIR=<checkout> python3 tools/reference/radam_vectors.py > test/fixtures/train/radam_reference.json
import os, sys, json, math, importlib.util, torch
spec = importlib.util.spec_from_file_location('optimization', os.path.join(os.environ.get('VILBERT_REFERENCE_DIR', '.'), 'vilbert', 'optimization.py'))
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
torch.manual_seed(0)
a = torch.nn.Parameter(torch.tensor([0.5, -1.0, 2.0]))
b = torch.nn.Parameter(torch.tensor([[1.0, -0.25], [0.75, 3.0]]))
opt = m.RAdam([{'params': [a], 'lr': 1e-2, 'weight_decay': 0.01}, {'params': [b], 'lr': 1e-1, 'weight_decay': 0.0}])
grads_a = [[0.1*(k+1), -0.2, 0.05*k] for k in range(8)]
grads_b = [[[0.3, -0.1*k], [0.02, 0.5]] for k in range(8)]
out = []
for k in range(8):
    a.grad = torch.tensor(grads_a[k]); b.grad = torch.tensor(grads_b[k])
    opt.step()
    out.append({'a': a.detach().tolist(), 'b': b.detach().flatten().tolist()})
print(json.dumps({'grads_a': grads_a, 'grads_b': grads_b, 'after': out}))
