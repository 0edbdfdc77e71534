// The random draws of the sampling datasets (retrieval negatives), behind an interface so
// that a test can replay the draws the reference made (the kit's per-item rng_log) and a
// training run can seed its own stream.
//
// `ReferenceRandomSource(S)` draws what the reference draws after `random.seed(S);
// np.random.seed(S)`: Python's and numpy's MT19937 with their own seeding and bounded-integer
// rules. The kit's goldens were made that way with S = 1000 + index.

export interface RandomSource {
  /** One element of a non-empty list, uniformly (Python's `random.choice(seq)`). */
  choice<T>(items: readonly T[]): T;
  /** An integer in [low, high), uniformly (numpy's `np.random.randint(low, high)`). */
  randint(low: number, high: number): number;
}

const MT_N = 624;
const MT_M = 397;

/** MT19937 (Matsumoto & Nishimura), the generator of CPython's `random` and numpy's RandomState. */
class MersenneTwister {
  private readonly state = new Uint32Array(MT_N);
  private index = MT_N;

  /** `init_genrand(seed)`: numpy's `np.random.seed(int)`. */
  static fromSeed(seed: number): MersenneTwister {
    const twister = new MersenneTwister();
    twister.initGenrand(seed);
    return twister;
  }

  /** `init_by_array(key)`: CPython's `random.seed(int)`, key = the 32-bit words of the int. */
  static fromKey(key: readonly number[]): MersenneTwister {
    const twister = new MersenneTwister();
    const mt = twister.state;
    twister.initGenrand(19650218);
    let i = 1;
    let j = 0;
    for (let k = Math.max(MT_N, key.length); k > 0; k--) {
      const previous = mt[i - 1]! ^ (mt[i - 1]! >>> 30);
      mt[i] = ((mt[i]! ^ Math.imul(previous, 1664525)) + key[j]! + j) >>> 0;
      i += 1;
      j += 1;
      if (i >= MT_N) {
        mt[0] = mt[MT_N - 1]!;
        i = 1;
      }
      if (j >= key.length) j = 0;
    }
    for (let k = MT_N - 1; k > 0; k--) {
      const previous = mt[i - 1]! ^ (mt[i - 1]! >>> 30);
      mt[i] = ((mt[i]! ^ Math.imul(previous, 1566083941)) - i) >>> 0;
      i += 1;
      if (i >= MT_N) {
        mt[0] = mt[MT_N - 1]!;
        i = 1;
      }
    }
    mt[0] = 0x80000000;
    return twister;
  }

  private initGenrand(seed: number): void {
    const mt = this.state;
    mt[0] = seed >>> 0;
    for (let i = 1; i < MT_N; i++) mt[i] = (Math.imul(1812433253, mt[i - 1]! ^ (mt[i - 1]! >>> 30)) + i) >>> 0;
    this.index = MT_N;
  }

  nextUint32(): number {
    const mt = this.state;
    if (this.index >= MT_N) {
      for (let k = 0; k < MT_N; k++) {
        const y = (mt[k]! & 0x80000000) | (mt[(k + 1) % MT_N]! & 0x7fffffff);
        mt[k] = mt[(k + MT_M) % MT_N]! ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
      }
      this.index = 0;
    }
    let y = mt[this.index++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    return (y ^ (y >>> 18)) >>> 0;
  }
}

/**
 * The reference's draws after `random.seed(seed); np.random.seed(seed)`: `choice` as CPython
 * 3 (`_randbelow`: getrandbits(n.bit_length()) until below n), `randint` as numpy's legacy
 * RandomState (masked rejection on 32-bit outputs). Ranges up to 2^32 only.
 */
export class ReferenceRandomSource implements RandomSource {
  private readonly python: MersenneTwister;
  private readonly numpy: MersenneTwister;

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffffffff) throw new RangeError(`seed must be an integer in [0, 2^32), got ${seed}`);
    this.python = MersenneTwister.fromKey([seed]);
    this.numpy = MersenneTwister.fromSeed(seed);
  }

  choice<T>(items: readonly T[]): T {
    const n = items.length;
    if (n === 0) throw new RangeError('cannot choose from an empty list');
    if (n > 0xffffffff) throw new RangeError(`choice over ${n} items: more than 2^32`);
    const bits = 32 - Math.clz32(n);
    let drawn: number;
    do drawn = this.python.nextUint32() >>> (32 - bits);
    while (drawn >= n);
    return items[drawn]!;
  }

  randint(low: number, high: number): number {
    if (!Number.isSafeInteger(low) || !Number.isSafeInteger(high) || high <= low) throw new RangeError(`randint needs integers low < high, got [${low}, ${high})`);
    const range = high - 1 - low;
    if (range === 0) return low;
    if (range > 0xffffffff) throw new RangeError(`randint range ${range + 1}: more than 2^32`);
    // The smallest all-ones mask covering range.
    const mask = range >= 0x80000000 ? 0xffffffff : (2 ** (32 - Math.clz32(range))) - 1;
    let drawn: number;
    do drawn = (this.numpy.nextUint32() & mask) >>> 0;
    while (drawn > range);
    return low + drawn;
  }
}

/** One logged draw, as the kit's meta.json `rng_log` writes it. */
export type LoggedDraw = ['random.choice', number, unknown] | ['np.random.randint', [number, number], number];

/**
 * Replays logged draws in order. Each call must be the logged kind, over a list of the logged
 * length (or the logged bounds), and the logged value must be drawable; otherwise it throws,
 * naming the draw, so that a loader drawing in another order than the reference fails.
 */
export class ReplayRandomSource implements RandomSource {
  private position = 0;

  constructor(private readonly draws: readonly LoggedDraw[], private readonly source = 'rng_log') {}

  /** Draws not consumed yet. */
  get remaining(): number {
    return this.draws.length - this.position;
  }

  choice<T>(items: readonly T[]): T {
    const draw = this.take('random.choice');
    if (draw[1] !== items.length) throw new Error(`${this.where()}: random.choice over ${items.length} items, logged ${String(draw[1])}`);
    const index = items.findIndex((item) => item === draw[2]);
    if (index < 0) throw new Error(`${this.where()}: logged value ${JSON.stringify(draw[2])} is not among the ${items.length} items`);
    return items[index]!;
  }

  randint(low: number, high: number): number {
    const draw = this.take('np.random.randint');
    const [loggedLow, loggedHigh] = draw[1] as [number, number];
    if (loggedLow !== low || loggedHigh !== high) throw new Error(`${this.where()}: randint(${low}, ${high}), logged [${loggedLow}, ${loggedHigh}]`);
    return draw[2] as number;
  }

  private take(kind: LoggedDraw[0]): LoggedDraw {
    const draw = this.draws[this.position];
    if (draw === undefined) throw new Error(`${this.source}: ${kind} requested after all ${this.draws.length} logged draws`);
    if (draw[0] !== kind) throw new Error(`${this.source}[${this.position}]: ${kind} requested, logged ${draw[0]}`);
    this.position += 1;
    return draw;
  }

  private where(): string {
    return `${this.source}[${this.position - 1}]`;
  }
}
