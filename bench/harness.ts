// Side-by-side timing against a reference process: alternate one of ours with
// one of theirs, after warm-up, and report medians and the ratio ours/theirs.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';

export interface Measured {
  ours: number[];
  reference: number[];
}

export class ReferenceProcess {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #lines: AsyncIterator<string>;
  readonly #reader: Interface;

  constructor(command: string, args: string[]) {
    this.#child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child.stderr.on('data', (chunk: Buffer) => process.stderr.write(chunk));
    this.#reader = createInterface({ input: this.#child.stdout });
    this.#lines = this.#reader[Symbol.asyncIterator]();
  }

  async readLine(): Promise<string> {
    const next = await this.#lines.next();
    if (next.done) throw new Error('the reference process ended early (see its stderr above)');
    return next.value;
  }

  /** Sends one command and returns the milliseconds the reference reports for it. */
  async time(command: string): Promise<number> {
    this.#child.stdin.write(`${command}\n`);
    return Number(await this.readLine());
  }

  close(): void {
    this.#child.stdin.end('quit\n');
    this.#reader.close();
  }
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export function timeMs(fn: () => void): number {
  const start = performance.now();
  fn();
  return performance.now() - start;
}

export async function alternate(
  ours: () => number,
  reference: () => Promise<number>,
  options: { warmup: number; repeats: number },
): Promise<Measured> {
  for (let i = 0; i < options.warmup; i++) {
    ours();
    await reference();
  }
  const measured: Measured = { ours: [], reference: [] };
  for (let i = 0; i < options.repeats; i++) {
    measured.ours.push(ours());
    measured.reference.push(await reference());
  }
  return measured;
}

export function report(
  name: string,
  measured: Measured,
): { name: string; ours: number; reference: number; ratio: number } {
  const ours = median(measured.ours);
  const reference = median(measured.reference);
  const row = { name, ours, reference, ratio: ours / reference };
  console.log(
    `${name.padEnd(36)} ours ${ours.toFixed(1).padStart(8)} ms   torch ${reference.toFixed(1).padStart(8)} ms   ` +
      `ratio ${row.ratio.toFixed(3)}   (ours ${measured.ours.map((v) => v.toFixed(0)).join(' ')} | torch ${measured.reference
        .map((v) => v.toFixed(0))
        .join(' ')})`,
  );
  return row;
}
