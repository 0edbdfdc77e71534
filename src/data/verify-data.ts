// Compares what a dataset returns with what the reference's loader returned
// (an expected/ folder of the data kit): every saved item, every element, in
// the reduced forms the kit uses for 2048- and 1601-wide tensors.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors } from '../io/safetensors.js';
import type { RawTensor } from '../io/raw-tensor.js';
import { rawValues } from '../parity/compare.js';
import type { ItemTensor, ItemValue, TaskDataset } from './dataset.js';

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

function numbers(tensor: ItemTensor): number[] {
  return Array.from(tensor.data as ArrayLike<number | bigint>, Number);
}

/** Rows of the last dimension: [..., W] -> list of W-long arrays. */
function lastDimRows(tensor: ItemTensor): number[][] {
  const width = tensor.shape[tensor.shape.length - 1] ?? 1;
  const values = numbers(tensor);
  const rows: number[][] = [];
  for (let i = 0; i < values.length; i += width) rows.push(values.slice(i, i + width));
  return rows;
}

function leadingRows(tensor: ItemTensor, rows: number): ItemTensor {
  const perRow = tensor.shape.slice(1).reduce((a, b) => a * b, 1);
  return { ...tensor, shape: [rows, ...tensor.shape.slice(1)], data: tensor.data.slice(0, rows * perRow) as ItemTensor['data'] };
}

function compareValues(name: string, actual: number[], expected: number[], relative: number, problems: string[]): void {
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
  if (worstAt >= 0) problems.push(`${name}[${worstAt}]: got ${actual[worstAt]}, reference ${expected[worstAt]} (max |diff| ${worst})`);
}

function checkElement(label: string, base: string, value: ItemValue | undefined, golden: Map<string, RawTensor>, metadata: Record<string, string>, problems: string[]): void {
  const trueShape = metadata[`${base}.shape`] ? (JSON.parse(metadata[`${base}.shape`]!) as number[]) : undefined;
  const dtype = metadata[`${base}.dtype`];
  if (value === undefined) {
    problems.push(`${label}: not returned`);
    return;
  }
  if (!isTensor(value)) {
    // A Python scalar: stored as a 0-d int64 tensor.
    const stored = golden.get(base);
    if (stored && Number(value) !== rawValues(stored)[0]) problems.push(`${label}: got ${value}, reference ${rawValues(stored)[0]}`);
    return;
  }
  if (trueShape && JSON.stringify(value.shape) !== JSON.stringify(trueShape)) {
    problems.push(`${label}: shape [${value.shape.join(', ')}], reference [${trueShape.join(', ')}]`);
    return;
  }
  if (dtype && dtype !== value.dtype) problems.push(`${label}: dtype ${value.dtype}, reference ${dtype}`);
  if (metadata[`${base}.omitted`]) {
    if (numbers(value).some((v) => v !== 0)) problems.push(`${label}: the reference's is all zeros`);
    return;
  }
  let compared = value;
  const tailFrom = metadata[`${base}.zero_tail_from`];
  if (tailFrom !== undefined) {
    const rows = Number(tailFrom);
    const perRow = value.shape.slice(1).reduce((a, b) => a * b, 1);
    if (numbers(value).slice(rows * perRow).some((v) => v !== 0)) problems.push(`${label}: rows from ${rows} on must be zero`);
    compared = leadingRows(value, rows);
  }
  const floating = compared.dtype !== 'int64';
  const plain = golden.get(base);
  if (plain) compareValues(label, numbers(compared), rawValues(plain), floating ? FLOAT_TOLERANCE : 0, problems);
  const head8 = golden.get(`${base}.head8`);
  if (head8) compareValues(`${label}.head8`, lastDimRows(compared).flatMap((row) => row.slice(0, 8)), rawValues(head8), FLOAT_TOLERANCE, problems);
  const rowsum = golden.get(`${base}.rowsum`);
  if (rowsum) {
    const sums = lastDimRows(compared).map((row) => row.reduce((a, b) => a + b, 0));
    compareValues(`${label}.rowsum`, sums, rawValues(rowsum), ROWSUM_TOLERANCE, problems);
  }
  const argmax = golden.get(`${base}.argmax`);
  if (argmax) {
    const indices = lastDimRows(compared).map((row) => row.indexOf(Math.max(...row)));
    compareValues(`${label}.argmax`, indices, rawValues(argmax), 0, problems);
  }
  const max = golden.get(`${base}.max`);
  if (max) compareValues(`${label}.max`, lastDimRows(compared).map((row) => Math.max(...row)), rawValues(max), FLOAT_TOLERANCE, problems);
  if (!plain && !head8 && !rowsum) problems.push(`${label}: the reference file has nothing to compare it with`);
}

/** Checks a dataset against one expected/<split> folder: its length and every saved item. */
export function verifyDatasetSplit(dataset: TaskDataset, expectedDir: string): SplitCheck {
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
    for (const name of order) checkElement(`item ${index} ${name}`, name, item.values[name], tensors, metadata, problems);
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

/** The split folders of one task's expected/ directory. */
export function expectedSplits(taskDir: string): string[] {
  return readdirSync(taskDir, { withFileTypes: true }).filter((entry) => entry.isDirectory()).map((entry) => join(taskDir, entry.name));
}
