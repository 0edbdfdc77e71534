import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  byteLength,
  byteSwapped,
  contiguousStrides,
  elementCount,
  gatherStrided,
  isRawTensor,
  viewExtent,
} from '../../src/io/raw-tensor.js';

/** Element-by-element reference of gatherStrided, for 1-byte elements. */
function naiveGather(storage: Uint8Array, offset: number, shape: number[], strides: number[]): number[] {
  const out: number[] = [];
  const walk = (dim: number, position: number): void => {
    if (dim === shape.length) {
      out.push(storage[position]!);
      return;
    }
    for (let i = 0; i < shape[dim]!; i++) walk(dim + 1, position + i * strides[dim]!);
  };
  walk(0, offset);
  return out;
}

describe('raw tensors', () => {
  it('counts elements and bytes, refusing impossible shapes', () => {
    assert.equal(elementCount([]), 1);
    assert.equal(elementCount([2, 0, 5]), 0);
    assert.equal(byteLength('bfloat16', [3, 4]), 24);
    assert.throws(() => elementCount([-1]), /invalid dimension size -1/);
    assert.throws(() => elementCount([2 ** 27, 2 ** 27]), /more than 2\^53 elements/);
    assert.throws(() => byteLength('float64', [2 ** 51]), /more than 2\^53 bytes/);
  });

  it('computes C strides and view extents', () => {
    assert.deepEqual(contiguousStrides([2, 3, 4]), [12, 4, 1]);
    assert.deepEqual(contiguousStrides([]), []);
    assert.equal(viewExtent(7, [2, 3], [5, 1]), 15);
    assert.equal(viewExtent(3, [0, 3], [5, 1]), 0);
    assert.equal(viewExtent(0, [4, 3], [0, 1]), 3);
  });

  it('gathers strided views into C order (transposed, sliced, stride 0, inner stride > 1)', () => {
    const storage = Uint8Array.from({ length: 40 }, (_, i) => i);
    const views: Array<[number, number[], number[]]> = [
      [0, [4, 5], [1, 4]],
      [7, [2, 3], [5, 1]],
      [1, [3], [5]],
      [2, [2, 3], [0, 1]],
      [0, [2, 2, 3], [1, 12, 4]],
      [3, [], []],
      [0, [2, 0, 3], [0, 3, 1]],
    ];
    for (const [offset, shape, strides] of views) {
      assert.deepEqual(
        [...gatherStrided(storage, 1, offset, shape, strides)],
        naiveGather(storage, offset, shape, strides),
        `${offset} ${shape} ${strides}`,
      );
    }
  });

  it('gathers multi-byte elements whole and returns contiguous views without copying', () => {
    const storage = new Uint8Array(new Uint16Array([0x0100, 0x0302, 0x0504, 0x0706]).buffer);
    assert.deepEqual([...gatherStrided(storage, 2, 0, [2, 2], [1, 2])], [0, 1, 4, 5, 2, 3, 6, 7]);
    const view = gatherStrided(storage, 2, 1, [3], [1]);
    assert.equal(view.buffer, storage.buffer);
    assert.deepEqual([...view], [2, 3, 4, 5, 6, 7]);
  });

  it('swaps byte order per element', () => {
    assert.deepEqual([...byteSwapped(Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]), 4)], [4, 3, 2, 1, 8, 7, 6, 5]);
  });

  it('recognises raw tensor records', () => {
    assert.ok(isRawTensor({ dtype: 'int8', shape: [1], data: new Uint8Array(1) }));
    assert.ok(!isRawTensor({ dtype: 'uint32', shape: [1], data: new Uint8Array(4) }));
    assert.ok(!isRawTensor({ dtype: 'int8', shape: [1], data: [1] }));
  });
});
