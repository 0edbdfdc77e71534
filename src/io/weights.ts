// Weight files as engine tensors: any supported format in, safetensors or
// torch .bin out. The byte-level readers live beside this file.
import { extname } from 'node:path';
import { readFileBytes, releaseFileBytes, writeAtomically } from './file-io.js';
import { CheckpointFormatError } from './format-error.js';
import * as torch from '../torch/index.js';
import type { RawTensor } from './raw-tensor.js';
import { parseSafetensors, writeSafetensors } from './safetensors.js';
import { parseTorchCheckpoint, findStateDict, writeTorchStateDict } from './torch-checkpoint.js';

export type WeightFormat = 'safetensors' | 'torch';

/** Tells a file's format from its first bytes (zip 'PK', legacy pickle 0x80, else safetensors). */
export function detectFormat(bytes: Uint8Array): WeightFormat {
  if (bytes.length >= 2 && bytes[0] === 0x50 && bytes[1] === 0x4b) return 'torch';
  if (bytes.length >= 1 && bytes[0] === 0x80) return 'torch';
  return 'safetensors';
}

/** The raw tensors of a weight file in any supported format, by content (not extension). */
export function readRawWeights(path: string): Map<string, RawTensor> {
  return rawWeightsOf(readFileBytes(path), path);
}

function rawWeightsOf(bytes: Uint8Array, path: string): Map<string, RawTensor> {
  // Else read as a safetensors header that is cut short: true, but not what a user needs.
  if (bytes.length === 0)
    throw new CheckpointFormatError(path, 'the file is empty (0 bytes): an incomplete copy or download?');
  if (detectFormat(bytes) === 'safetensors') return parseSafetensors(bytes, path).tensors;
  return findStateDict(parseTorchCheckpoint(bytes, path).object, path);
}

export function rawToTensor(raw: RawTensor): torch.Tensor {
  return torch.tensor(raw.data, { dtype: raw.dtype, shape: raw.shape });
}

export function tensorToRaw(tensor: torch.Tensor): RawTensor {
  const array = tensor.toArray();
  return {
    dtype: tensor.dtype,
    shape: tensor.shape,
    data: new Uint8Array(array.buffer, array.byteOffset, array.byteLength),
  };
}

/**
 * A weight file as kept tensors (the caller disposes them). Tensors stored aligned share the
 * file's bytes instead of copying them (one pass less over a 1 GB checkpoint, and no second
 * copy of it in memory); the file's memory is freed with the last of them.
 */
export function readWeights(path: string): Map<string, torch.Tensor> {
  const bytes = readFileBytes(path);
  const tensors = new Map<string, torch.Tensor>();
  try {
    for (const [key, raw] of rawWeightsOf(bytes, path))
      tensors.set(key, torch.tensorOverFileBytes(raw.data, raw.dtype, [...raw.shape]).keep());
  } catch (error) {
    for (const tensor of tensors.values()) tensor.dispose();
    throw error;
  } finally {
    releaseFileBytes(bytes);
  }
  return tensors;
}

export function writeWeights(
  path: string,
  tensors: Map<string, torch.Tensor>,
  format: WeightFormat,
  metadata: Record<string, string> = {},
): void {
  const raw = new Map<string, RawTensor>([...tensors].map(([key, tensor]) => [key, tensorToRaw(tensor)]));
  if (format === 'safetensors') writeSafetensors(path, raw, metadata);
  else writeTorchStateDict(path, raw);
}

/** The format a file name asks for: `.safetensors`, or `.bin`/`.pt`/`.pth` for PyTorch's zip format. */
export function weightFormatOfPath(path: string): WeightFormat {
  const extension = extname(path).toLowerCase();
  if (extension === '.safetensors') return 'safetensors';
  if (extension === '.bin' || extension === '.pt' || extension === '.pth') return 'torch';
  throw new Error(
    `${path}: cannot tell the output format from '${extension || 'no extension'}' (use .safetensors, .bin, .pt or .pth)`,
  );
}

/**
 * Converts a weights file (any supported format, told from its content) into `format`, by
 * default the one `output`'s extension names (weightFormatOfPath). The tensors are copied
 * byte for byte; the file is written under a temporary name and renamed, so an existing
 * `output` stays intact until the new file is complete.
 */
export function convertWeights(
  input: string,
  output: string,
  format: WeightFormat = weightFormatOfPath(output),
): { tensors: number; format: WeightFormat } {
  const tensors = readRawWeights(input);
  writeAtomically(output, (temporary) => {
    if (format === 'safetensors') writeSafetensors(temporary, tensors, { format: 'pt' });
    else writeTorchStateDict(temporary, tensors);
  });
  return { tensors: tensors.size, format };
}
