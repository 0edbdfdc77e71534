import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PyGlobal, unpickle } from '../../src/io/pickle.js';
import { PYTHON_DATA_GLOBALS } from '../../src/io/pickle-builtins.js';
import { PickleCall, PickleGlobalRef, PicklePersistentId, pickle } from '../../src/io/pickle-writer.js';

const read = (data: Uint8Array, persistentLoad?: (pid: unknown) => unknown): unknown =>
  unpickle(data, { allow: new Map([...PYTHON_DATA_GLOBALS, ['torch.FloatStorage', {}]]), persistentLoad });

describe('pickle writer', () => {
  it('round-trips integers across every encoding boundary', () => {
    const values = [
      0,
      1,
      255,
      256,
      65535,
      65536,
      -1,
      -128,
      -129,
      2 ** 31 - 1,
      -(2 ** 31),
      2 ** 31,
      -(2 ** 31) - 1,
      2 ** 53 - 1,
    ];
    const bigints = [2n ** 63n, -(2n ** 63n), 2n ** 64n, -(2n ** 64n) + 1n, 127n << 200n];
    assert.deepEqual(read(pickle([...values, ...bigints])), [...values, ...bigints]);
  });

  it('round-trips floats, strings, None, booleans and nested tuples', () => {
    const value = [
      1.5,
      -0.1,
      Infinity,
      'h\u00e9llo \u{1f600}',
      '',
      null,
      true,
      false,
      [],
      [1],
      [1, 2],
      [1, 2, 3],
      [[1, [2]], 'x', 4, 5],
    ];
    assert.deepEqual(read(pickle(value)), value);
  });

  it('writes calls with dict items (OrderedDict) and globals as values', () => {
    const orderedDict = new PickleGlobalRef('collections', 'OrderedDict');
    const items = Array.from({ length: 1500 }, (_, i): [unknown, unknown] => [`key${i}`, i]);
    const value = read(pickle(new PickleCall(orderedDict, [], items))) as Map<string, number>;
    assert.equal(value.size, 1500);
    assert.equal(value.get('key1499'), 1499);
    const storage = read(pickle(new PickleGlobalRef('torch', 'FloatStorage')));
    assert.ok(storage instanceof PyGlobal && storage.qualifiedName === 'torch.FloatStorage');
  });

  it('memoises repeated globals (first GLOBAL, then BINGET)', () => {
    const ref = new PickleGlobalRef('collections', 'OrderedDict');
    const once = pickle([ref]);
    const twice = pickle([ref, ref]);
    assert.equal(twice.length - once.length, 2); // one BINGET; TUPLE2 and TUPLE1 are both one byte
    assert.equal(Buffer.from(twice).toString('latin1').split('OrderedDict').length, 2);
  });

  it("writes persistent ids for the reader's persistent_load", () => {
    const seen: unknown[] = [];
    const value = read(pickle([new PicklePersistentId(['storage', 'k', 3])]), (pid) => {
      seen.push(pid);
      return 'storage!';
    });
    assert.deepEqual(value, ['storage!']);
    assert.deepEqual(seen, [['storage', 'k', 3]]);
  });

  it('refuses values it has no pickle form for', () => {
    assert.throws(() => pickle(new Map()), /cannot pickle a Map/);
    assert.throws(() => pickle(undefined), /cannot pickle a undefined/);
    assert.throws(() => pickle({}), /cannot pickle a Object/);
  });
});
