// The reference's per-task "dynamic stop-and-go" controller (MultiTaskStopOnPlateau in
// train_tasks.py, mode max): a task whose validation score stops improving is paused
// (trained only every train_iter_gap iterations) until its score falls clearly below
// its best. The state is plain data so that checkpoints can save and restore it.

export interface StopAndGoState {
  best: number;
  numBad: number;
  cooldownCounter: number;
  inStop: boolean;
}

export interface StopAndGoOptions {
  patience: number;
  cooldown: number;
  /** Relative improvement needed to count as better. */
  threshold: number;
  /** Relative drop below the best that resumes a stopped task. */
  continueThreshold: number;
}

/** The settings train_tasks.py uses. */
export const REFERENCE_STOP_AND_GO: StopAndGoOptions = {
  patience: 1,
  cooldown: 1,
  threshold: 0.001,
  continueThreshold: 0.005,
};

const INITIAL: StopAndGoState = { best: Number.NEGATIVE_INFINITY, numBad: 0, cooldownCounter: 0, inStop: false };

export class StopAndGo {
  #state: StopAndGoState = { ...INITIAL };

  constructor(readonly options: StopAndGoOptions = REFERENCE_STOP_AND_GO) {}

  get inStop(): boolean {
    return this.#state.inStop;
  }

  /** One validation score (higher is better). */
  step(score: number): void {
    const { patience, cooldown, threshold, continueThreshold } = this.options;
    const state = this.#state;
    if (score > state.best * (1 + threshold)) {
      state.best = score;
      state.numBad = 0;
    } else {
      state.numBad += 1;
    }
    if (state.cooldownCounter > 0) {
      state.cooldownCounter -= 1;
      state.numBad = 0;
    }
    if (state.numBad > patience) {
      state.inStop = true;
      state.cooldownCounter = cooldown;
      state.numBad = 0;
    } else if (score < state.best * (1 - continueThreshold) && state.inStop) {
      state.inStop = false;
      state.cooldownCounter = cooldown;
      state.numBad = 0;
    }
  }

  /** Back to the initial state (the reference resets every task after epochs 5 and 7). */
  reset(): void {
    this.#state = { ...INITIAL };
  }

  state(): StopAndGoState {
    return { ...this.#state };
  }

  /** Restores a saved state; a best of null is -Infinity as JSON writes it. */
  restore(state: StopAndGoState): void {
    this.#state = { ...state, best: state.best ?? Number.NEGATIVE_INFINITY };
  }
}
