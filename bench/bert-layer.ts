// One BERT-base layer (hidden 768, 12 heads, intermediate 3072, batch 32,
// sequence 124, padded attention mask): forward (eval, no grad) and
// forward+backward (train mode, dropout on), ours vs Debian's python3-torch in
// the same run, same thread count, alternating, medians after warm-up.
//   node dist/bench/bert-layer.js [--threads N] [--repeats N] [--batch B] [--seq T]
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as torch from '../src/torch/index.js';
import { ReferenceProcess, alternate, report, timeMs } from './harness.js';

const { nn, F } = torch;

class SelfAttention extends torch.Module {
  readonly query = new nn.Linear(768, 768);
  readonly key = new nn.Linear(768, 768);
  readonly value = new nn.Linear(768, 768);
  readonly dropout = new nn.Dropout(0.1);
  readonly heads = 12;
  readonly headDim = 64;

  split(x: torch.Tensor): torch.Tensor {
    const [B, T] = x.shape as [number, number];
    return x.view(B, T, this.heads, this.headDim).permute(0, 2, 1, 3); // [B, H, T, D]
  }

  forward(hidden: torch.Tensor, mask: torch.Tensor): torch.Tensor {
    const [B, T] = hidden.shape as [number, number];
    const q = this.split(this.query.call(hidden));
    const k = this.split(this.key.call(hidden));
    const v = this.split(this.value.call(hidden));
    const scores = q.matmul(k.transpose(-1, -2)).div(Math.sqrt(this.headDim)).add(mask); // [B, H, T, T]
    const probs = this.dropout.call(F.softmax(scores, -1));
    return probs.matmul(v).permute(0, 2, 1, 3).contiguous().view(B, T, -1); // [B, T, 768]
  }
}

/** Linear, dropout, then LayerNorm of the residual sum (BertSelfOutput / BertOutput). */
class ResidualOutput extends torch.Module {
  readonly dense: torch.nn.Linear;
  readonly LayerNorm = new nn.LayerNorm(768, 1e-12);
  readonly dropout = new nn.Dropout(0.1);

  constructor(inFeatures: number) {
    super();
    this.dense = new nn.Linear(inFeatures, 768);
  }

  forward(hidden: torch.Tensor, residual: torch.Tensor): torch.Tensor {
    return this.LayerNorm.call(this.dropout.call(this.dense.call(hidden)).add(residual));
  }
}

class Intermediate extends torch.Module {
  readonly dense = new nn.Linear(768, 3072);
  forward(hidden: torch.Tensor): torch.Tensor {
    return F.gelu(this.dense.call(hidden)); // [B, T, 3072]
  }
}

class BertLayer extends torch.Module {
  readonly attention = new SelfAttention();
  readonly attention_output = new ResidualOutput(768);
  readonly intermediate = new Intermediate();
  readonly output = new ResidualOutput(3072);

  forward(hidden: torch.Tensor, mask: torch.Tensor): torch.Tensor {
    const attended = this.attention_output.call(this.attention.call(hidden, mask), hidden);
    return this.output.call(this.intermediate.call(attended), attended);
  }
}

const { values } = parseArgs({
  options: {
    threads: { type: 'string', default: '2' },
    repeats: { type: 'string', default: '7' },
    warmup: { type: 'string', default: '2' },
    batch: { type: 'string', default: '32' },
    seq: { type: 'string', default: '124' },
  },
});
const threads = Number(values.threads);
const batch = Number(values.batch);
const seq = Number(values.seq);
const schedule = { warmup: Number(values.warmup), repeats: Number(values.repeats) };

torch.setNumThreads(threads);
torch.manualSeed(0);
const layer = new BertLayer();
const hidden = torch.randn([batch, seq, 768]).keep();
const mask = torch
  .scope(() => {
    const lengths = torch
      .arange(batch)
      .remainder(seq)
      .div(2)
      .floor()
      .add(Math.floor(seq / 2));
    const valid = torch.arange(seq).unsqueeze(0).lt(lengths.unsqueeze(1)).float(); // [B, T]
    return valid.neg().add(1).mul(-10000).view(batch, 1, 1, seq);
  })
  .keep();

const script = fileURLToPath(new URL('../../bench/reference/bert_layer.py', import.meta.url));
const python = process.env.VILBERT_PYTHON ?? '/usr/bin/python3';
const reference = new ReferenceProcess(python, [script, String(threads), String(batch), String(seq)]);
console.log(
  `reference: ${await reference.readLine()}; ours: libtorch ${torch.buildInfo().torchVersion}, ${torch.getNumThreads()} threads`,
);
console.log(
  `BERT-base layer, B=${batch}, T=${seq}, ${schedule.repeats} timed runs each after ${schedule.warmup} warm-up`,
);

const forward = () => timeMs(() => torch.scope(() => torch.noGrad(() => void layer.eval().call(hidden, mask))));
const forwardBackward = () =>
  timeMs(() =>
    torch.scope(() => {
      layer.train().zeroGrad();
      layer.call(hidden, mask).sum().backward();
    }),
  );

const rows = [
  report('forward (eval, no grad)', await alternate(forward, () => reference.time('fwd'), schedule)),
  report('forward+backward (train)', await alternate(forwardBackward, () => reference.time('fwdbwd'), schedule)),
];
reference.close();
const target = 1.05;
for (const row of rows)
  console.log(
    `${row.name}: ratio ${row.ratio.toFixed(3)} (target <= ${target}) ${row.ratio <= target ? 'met' : 'NOT met'}`,
  );
