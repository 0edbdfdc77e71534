// Compares what a dataset returns with what the reference's loader returned
// (an expected/ folder of the data kit): every saved item, every element, in
// the reduced forms the kit uses for 2048- and 1601-wide tensors.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors } from '../io/safetensors.js';
import type { RawTensor } from '../io/raw-tensor.js';
import { rawValues } from './compare.js';
import type { ItemTensor, ItemValue, TaskDataset } from '../data/dataset.js';

export interface SplitCheck {
  /** The expected/ folder name, e.g. trainval__train__VQAClassificationDataset. */
  split: string;
  ok: boolean;
  itemsChecked: number;
  problems: string[];
}

interface SplitMeta {
  len: number;
  saved_indices: number[];
  items: Record<string, { status: string; message?: string; non_tensor?: Record<string, number | string> }>;
}

const FLOAT_TOLERANCE = 1e-6; // relative, for float32 elements (the loaders aim at bit-exact)
const ROWSUM_TOLERANCE = 1e-6; // relative, float64 row sums of 2048/1601-wide rows

function isTensor(value: ItemValue | undefined): value is ItemTensor {
  return typeof value === 'object' && value !== null && 'shape' in value;
}

/** Element i as a number (int64 elements converted; exact up to 2^53). */
function valueAt(tensor: ItemTensor, index: number): number {
  return Number(tensor.data[index]!);
}

/** The elements as numbers, without copying float data. */
function numbers(tensor: ItemTensor): ArrayLike<number> {
  return tensor.data instanceof BigInt64Array ? Array.from(tensor.data, Number) : tensor.data;
}

/** Per row of the last dimension: reduce(row) -> one number (no per-row arrays for wide tensors). */
function perRow(tensor: ItemTensor, reduce: (start: number, width: number) => number): number[] {
  const width = tensor.shape[tensor.shape.length - 1] ?? 1;
  const result: number[] = [];
  for (let start = 0; start < tensor.data.length; start += width) result.push(reduce(start, width));
  return result;
}

function head8Values(tensor: ItemTensor): number[] {
  const width = tensor.shape[tensor.shape.length - 1] ?? 1;
  const result: number[] = [];
  for (let start = 0; start < tensor.data.length; start += width) {
    for (let i = 0; i < Math.min(8, width); i++) result.push(valueAt(tensor, start + i));
  }
  return result;
}

function isAllZero(tensor: ItemTensor, from = 0): boolean {
  for (let i = from; i < tensor.data.length; i++) if (Number(tensor.data[i]) !== 0) return false;
  return true;
}

function leadingRows(tensor: ItemTensor, rows: number): ItemTensor {
  const elementsPerRow = tensor.shape.slice(1).reduce((a, b) => a * b, 1);
  return {
    ...tensor,
    shape: [rows, ...tensor.shape.slice(1)],
    data: tensor.data.subarray(0, rows * elementsPerRow) as ItemTensor['data'],
  };
}

function compareValues(
  name: string,
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  relative: number,
  problems: string[],
): void {
  if (actual.length !== expected.length) {
    problems.push(`${name}: ${actual.length} values, reference ${expected.length}`);
    return;
  }
  let worst = 0;
  let worstAt = -1;
  for (let i = 0; i < expected.length; i++) {
    const difference = Math.abs(actual[i]! - expected[i]!);
    const bound = relative * Math.max(1, Math.abs(expected[i]!));
    if (!(difference <= bound) && !(difference <= worst)) {
      worst = Number.isNaN(difference) ? Number.POSITIVE_INFINITY : difference;
      worstAt = i;
    }
  }
  if (worstAt >= 0)
    problems.push(`${name}[${worstAt}]: got ${actual[worstAt]}, reference ${expected[worstAt]} (max |diff| ${worst})`);
}

function checkElement(
  label: string,
  base: string,
  value: ItemValue | undefined,
  golden: Map<string, RawTensor>,
  metadata: Record<string, string>,
  problems: string[],
): void {
  const trueShape = metadata[`${base}.shape`] ? (JSON.parse(metadata[`${base}.shape`]!) as number[]) : undefined;
  const dtype = metadata[`${base}.dtype`];
  if (value === undefined) {
    problems.push(`${label}: not returned`);
    return;
  }
  if (!isTensor(value)) {
    // A Python scalar: stored as a 0-d int64 tensor.
    const stored = golden.get(base);
    if (stored && Number(value) !== rawValues(stored)[0])
      problems.push(`${label}: got ${value}, reference ${rawValues(stored)[0]}`);
    return;
  }
  if (trueShape && JSON.stringify(value.shape) !== JSON.stringify(trueShape)) {
    problems.push(`${label}: shape [${value.shape.join(', ')}], reference [${trueShape.join(', ')}]`);
    return;
  }
  if (dtype && dtype !== value.dtype) problems.push(`${label}: dtype ${value.dtype}, reference ${dtype}`);
  if (metadata[`${base}.omitted`]) {
    if (!isAllZero(value)) problems.push(`${label}: the reference's is all zeros`);
    return;
  }
  let compared = value;
  const tailFrom = metadata[`${base}.zero_tail_from`];
  if (tailFrom !== undefined) {
    const rows = Number(tailFrom);
    const elementsPerRow = value.shape.slice(1).reduce((a, b) => a * b, 1);
    if (!isAllZero(value, rows * elementsPerRow)) problems.push(`${label}: rows from ${rows} on must be zero`);
    compared = leadingRows(value, rows);
  }
  const floating = compared.dtype !== 'int64';
  const plain = golden.get(base);
  if (plain) compareValues(label, numbers(compared), rawValues(plain), floating ? FLOAT_TOLERANCE : 0, problems);
  const head8 = golden.get(`${base}.head8`);
  if (head8) compareValues(`${label}.head8`, head8Values(compared), rawValues(head8), FLOAT_TOLERANCE, problems);
  const rowsum = golden.get(`${base}.rowsum`);
  if (rowsum) {
    const sums = perRow(compared, (start, width) => {
      let sum = 0;
      for (let i = start; i < start + width; i++) sum += valueAt(compared, i);
      return sum;
    });
    compareValues(`${label}.rowsum`, sums, rawValues(rowsum), ROWSUM_TOLERANCE, problems);
  }
  const argmax = golden.get(`${base}.argmax`);
  const max = golden.get(`${base}.max`);
  if (argmax || max) {
    // First index of the maximum, as numpy's argmax.
    const best = perRow(compared, (start, width) => {
      let at = start;
      for (let i = start + 1; i < start + width; i++) if (valueAt(compared, i) > valueAt(compared, at)) at = i;
      return at - start;
    });
    if (argmax) compareValues(`${label}.argmax`, best, rawValues(argmax), 0, problems);
    const width = compared.shape[compared.shape.length - 1] ?? 1;
    if (max)
      compareValues(
        `${label}.max`,
        best.map((at, row) => valueAt(compared, row * width + at)),
        rawValues(max),
        FLOAT_TOLERANCE,
        problems,
      );
  }
  if (!plain && !head8 && !rowsum) problems.push(`${label}: the reference file has nothing to compare it with`);
}

/** Checks a dataset against one expected/<split> folder: its length and every saved item. */
export interface VerifyOptions {
  /**
   * Called before each item with the seed the reference set before producing it
   * (`rng_seed` of the item's metadata, for the sampling datasets), so that a
   * dataset drawing from a reference-compatible random source can replay it.
   */
  beforeItem?: (index: number, rngSeed: number | undefined) => void;
}

export function verifyDatasetSplit(dataset: TaskDataset, expectedDir: string, options: VerifyOptions = {}): SplitCheck {
  const split = expectedDir.split('/').filter(Boolean).pop() ?? expectedDir;
  const problems: string[] = [];
  const meta = JSON.parse(readFileSync(join(expectedDir, 'meta.json'), 'utf8')) as SplitMeta;
  if (dataset.length !== meta.len) problems.push(`length ${dataset.length}, reference ${meta.len}`);
  let itemsChecked = 0;
  for (const index of meta.saved_indices) {
    const status = meta.items[String(index)];
    const file = join(expectedDir, `item_${String(index).padStart(4, '0')}.safetensors`);
    if (status?.status !== 'ok' || !existsSync(file)) continue; // the reference failed on this item; nothing to compare
    const { tensors, metadata } = readSafetensors(file);
    options.beforeItem?.(index, metadata.rng_seed === undefined ? undefined : Number(metadata.rng_seed));
    let item;
    try {
      item = dataset.item(index);
    } catch (error) {
      problems.push(`item ${index}: ${error instanceof Error ? error.message : String(error)}`);
      continue;
    }
    const order = (metadata.return_order ?? '').split(',').filter(Boolean);
    if (order.length > 0 && order.join(',') !== item.order.join(',')) {
      problems.push(`item ${index}: returns (${item.order.join(', ')}), reference (${order.join(', ')})`);
    }
    for (const name of order)
      checkElement(`item ${index} ${name}`, name, item.values[name], tensors, metadata, problems);
    for (const [name, value] of Object.entries(status.non_tensor ?? {})) {
      if (item.values[name] !== value && Number(item.values[name]) !== Number(value)) {
        problems.push(`item ${index} ${name}: got ${String(item.values[name])}, reference ${String(value)}`);
      }
    }
    itemsChecked += 1;
  }
  if (itemsChecked === 0) problems.push('no item could be checked');
  return { split, ok: problems.length === 0, itemsChecked, problems };
}

/** Compares named values (one batch, say) with one golden safetensors file, element by element. */
export function verifyTensorFile(values: Readonly<Record<string, ItemValue>>, file: string): string[] {
  const problems: string[] = [];
  const { tensors, metadata } = readSafetensors(file);
  const order = (metadata.return_order ?? '').split(',').filter(Boolean);
  if (order.length === 0) problems.push(`${file}: no return_order in its metadata`);
  for (const name of order) checkElement(name, name, values[name], tensors, metadata, problems);
  return problems;
}

/** The split folders of one task's expected/ directory. */
export function expectedSplits(taskDir: string): string[] {
  return readdirSync(taskDir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => join(taskDir, entry.name));
}
