// The random draws of the sampling datasets (retrieval negatives: RandomSource) and of the
// pre-training reader (masking: PretrainingRandomSource), behind interfaces so that a test
// can replay the draws the reference made (the kit's per-item rng_log) and a training run can
// seed its own stream. Both reference sources run on the one MersenneTwister below.
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

/** An MT19937 state as plain JSON data. */
export interface MtState {
  words: number[];
  index: number;
}

/** MT19937 (Matsumoto & Nishimura), the generator of CPython's `random` and numpy's RandomState. */
class MersenneTwister {
  private constructor(
    private readonly words: Uint32Array,
    private index: number,
  ) {}

  /** `init_genrand(seed)`: numpy's `np.random.seed(int)`. */
  static fromSeed(seed: number): MersenneTwister {
    const words = new Uint32Array(MT_N);
    words[0] = seed >>> 0;
    for (let i = 1; i < MT_N; i++) words[i] = (Math.imul(1812433253, words[i - 1]! ^ (words[i - 1]! >>> 30)) + i) >>> 0;
    return new MersenneTwister(words, MT_N);
  }

  /** `init_by_array(key)`: CPython's `random.seed(int)`, key = the 32-bit words of the int. */
  static fromKey(key: readonly number[]): MersenneTwister {
    const twister = MersenneTwister.fromSeed(19650218);
    const mt = twister.words;
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

  static fromState(state: MtState): MersenneTwister {
    if (state.words.length !== MT_N || !(state.index >= 0 && state.index <= MT_N))
      throw new RangeError('an MT19937 state is 624 words and an index in [0, 624]');
    return new MersenneTwister(Uint32Array.from(state.words), state.index);
  }

  state(): MtState {
    return { words: Array.from(this.words), index: this.index };
  }

  nextUint32(): number {
    const mt = this.words;
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

  /** CPython 3's `_randbelow(n)`, n in [1, 2^32]: getrandbits(n.bit_length()) until below n. */
  pythonBelow(n: number): number {
    const bits = 32 - Math.clz32(n);
    let drawn: number;
    do drawn = this.nextUint32() >>> (32 - bits);
    while (drawn >= n);
    return drawn;
  }

  /** numpy's legacy bounded draw in [0, range], range < 2^32: masked rejection, no draw when range is 0. */
  numpyUpTo(range: number): number {
    if (range === 0) return 0;
    // The smallest all-ones mask covering range.
    const mask = 0xffffffff >>> Math.clz32(range);
    let drawn: number;
    do drawn = (this.nextUint32() & mask) >>> 0;
    while (drawn > range);
    return drawn;
  }
}

function checkSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffffffff)
    throw new RangeError(`seed must be an integer in [0, 2^32), got ${seed}`);
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
    checkSeed(seed);
    this.python = MersenneTwister.fromKey([seed]);
    this.numpy = MersenneTwister.fromSeed(seed);
  }

  choice<T>(items: readonly T[]): T {
    const n = items.length;
    if (n === 0) throw new RangeError('cannot choose from an empty list');
    if (n > 0xffffffff) throw new RangeError(`choice over ${n} items: more than 2^32`);
    return items[this.python.pythonBelow(n)]!;
  }

  randint(low: number, high: number): number {
    if (!Number.isSafeInteger(low) || !Number.isSafeInteger(high) || high <= low)
      throw new RangeError(`randint needs integers low < high, got [${low}, ${high})`);
    const range = high - 1 - low;
    if (range > 0xffffffff) throw new RangeError(`randint range ${range + 1}: more than 2^32`);
    return low + this.numpy.numpyUpTo(range);
  }
}

// ---------------------------------------------------------------------------------------
// The pre-training reader's draws (concept-captions.ts)

/** The three kinds of draw the pre-training reference makes, named after the Python calls they stand for. */
export interface PretrainingRandomSource {
  /** `random.random()`: a double in [0, 1). */
  random(): number;
  /** `random.randint(a, b)`: an integer in [a, b]. */
  randint(a: number, b: number): number;
  /** `np.random.randint(n)`: an integer in [0, n). */
  npRandint(n: number): number;
}

/** Both generators' states, to save with a checkpoint and resume the exact sequence. */
export interface ReferenceRandomState {
  python: MtState;
  numpy: MtState;
}

/** Python's `random` module and numpy's global legacy RandomState, seeded as `random.seed(S); np.random.seed(S)`. */
export class ReferenceRandom implements PretrainingRandomSource {
  private constructor(
    private readonly python: MersenneTwister,
    private readonly numpy: MersenneTwister,
  ) {}

  static seeded(seed: number): ReferenceRandom {
    checkSeed(seed);
    return new ReferenceRandom(MersenneTwister.fromKey([seed]), MersenneTwister.fromSeed(seed));
  }

  static fromState(state: ReferenceRandomState): ReferenceRandom {
    return new ReferenceRandom(MersenneTwister.fromState(state.python), MersenneTwister.fromState(state.numpy));
  }

  state(): ReferenceRandomState {
    return { python: this.python.state(), numpy: this.numpy.state() };
  }

  /** genrand_res53: 53 random bits from two words. */
  random(): number {
    const high = this.python.nextUint32() >>> 5;
    const low = this.python.nextUint32() >>> 6;
    return (high * 67108864 + low) / 9007199254740992;
  }

  /** randrange(a, b + 1). */
  randint(a: number, b: number): number {
    const n = b - a + 1;
    if (!Number.isSafeInteger(a) || !Number.isSafeInteger(b) || n < 1 || n > 0xffffffff)
      throw new RangeError(`randint(${a}, ${b}): empty or unsupported range`);
    return a + this.python.pythonBelow(n);
  }

  npRandint(n: number): number {
    if (!Number.isSafeInteger(n) || n < 1 || n > 0x100000000)
      throw new RangeError(`np.random.randint(${n}): unsupported bound`);
    return this.numpy.numpyUpTo(n - 1);
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

  constructor(
    private readonly draws: readonly LoggedDraw[],
    private readonly source = 'rng_log',
  ) {}

  /** Draws not consumed yet. */
  get remaining(): number {
    return this.draws.length - this.position;
  }

  choice<T>(items: readonly T[]): T {
    const draw = this.take('random.choice');
    if (draw[1] !== items.length)
      throw new Error(`${this.where()}: random.choice over ${items.length} items, logged ${String(draw[1])}`);
    const index = items.findIndex((item) => item === draw[2]);
    if (index < 0)
      throw new Error(
        `${this.where()}: logged value ${JSON.stringify(draw[2])} is not among the ${items.length} items`,
      );
    return items[index]!;
  }

  randint(low: number, high: number): number {
    const draw = this.take('np.random.randint');
    const [loggedLow, loggedHigh] = draw[1] as [number, number];
    if (loggedLow !== low || loggedHigh !== high)
      throw new Error(`${this.where()}: randint(${low}, ${high}), logged [${loggedLow}, ${loggedHigh}]`);
    return draw[2] as number;
  }

  private take(kind: LoggedDraw[0]): LoggedDraw {
    const draw = this.draws[this.position];
    if (draw === undefined)
      throw new Error(`${this.source}: ${kind} requested after all ${this.draws.length} logged draws`);
    if (draw[0] !== kind) throw new Error(`${this.source}[${this.position}]: ${kind} requested, logged ${draw[0]}`);
    this.position += 1;
    return draw;
  }

  private where(): string {
    return `${this.source}[${this.position - 1}]`;
  }
}
