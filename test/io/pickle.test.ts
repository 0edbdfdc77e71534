import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CheckpointFormatError } from '../../src/io/format-error.js';
import {
  ForbiddenGlobalError,
  PyGlobal,
  PyObject,
  combineAllowLists,
  opaqueClass,
  unpickle,
  type UnpickleOptions,
} from '../../src/io/pickle.js';
import { PYTHON_DATA_GLOBALS } from '../../src/io/pickle-builtins.js';
import { NUMPY_GLOBALS } from '../../src/io/pickle-numpy.js';
import { isRawTensor, type RawTensor } from '../../src/io/raw-tensor.js';
import { fixture, toHex } from './fixtures.js';

const NUMPY_READER = combineAllowLists(PYTHON_DATA_GLOBALS, NUMPY_GLOBALS);
const expected = JSON.parse(readFileSync(fixture('io', 'numpy_expected.json'), 'utf8')) as {
  arrays: Record<string, { dtype: string; shape: number[]; hex: string }>;
  scalars: Record<string, number | boolean>;
};

/** A pickle from opcode text: `\x..` escapes for bytes, the rest as latin-1. */
const bytes = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'latin1'));

function refuses(data: Uint8Array, options: Partial<UnpickleOptions>, pattern: RegExp): CheckpointFormatError {
  let caught: unknown;
  assert.throws(
    () => unpickle(data, { allow: PYTHON_DATA_GLOBALS, source: 'test.pkl', ...options }),
    (error: unknown) => {
      caught = error;
      return (
        error instanceof CheckpointFormatError && /^test\.pkl: /.test(error.message) && pattern.test(error.message)
      );
    },
  );
  return caught as CheckpointFormatError;
}

describe('unpickler: numpy values (image-feature LMDB layout)', () => {
  for (let protocol = 0; protocol <= 5; protocol++) {
    it(`reads the protocol-${protocol} fixture: arrays, scalars and plain values`, () => {
      const value = unpickle(readFileSync(fixture('io', `numpy_p${protocol}.pkl`)), { allow: NUMPY_READER }) as Map<
        string,
        unknown
      >;
      for (const [name, array] of Object.entries(expected.arrays)) {
        const tensor = value.get(name) as RawTensor;
        assert.ok(isRawTensor(tensor), name);
        assert.deepEqual({ dtype: tensor.dtype, shape: tensor.shape, hex: toHex(tensor.data) }, array, name);
      }
      for (const [name, scalar] of Object.entries(expected.scalars)) assert.equal(value.get(name), scalar, name);
      assert.equal(value.get('image_id'), 'COCO_458752');
      assert.equal(value.get('image_h'), 480);
      assert.equal(value.get('big_int'), 2n ** 70n);
      assert.equal(value.get('negative'), -5);
      assert.equal(value.get('ratio'), 1.5);
      assert.equal(value.get('text'), 'h\u00e9llo\n\\u0041 \u4e16');
      assert.deepEqual(value.get('keys'), [
        bytes('458752'),
        new Uint8Array(0),
        Uint8Array.from({ length: 256 }, (_, i) => i),
      ]);
      assert.deepEqual(value.get('a_set'), new Set([1, 2]));
      assert.deepEqual(value.get('a_tuple'), [1, 'a', null, true, false]);
      // One array pickled twice (memo) is one object.
      assert.equal(value.get('shared_a'), value.get('shared_b'));
    });
  }

  it('refuses numpy globals when the allow-list lacks them', () => {
    const error = refuses(
      readFileSync(fixture('io', 'numpy_p4.pkl')),
      {},
      /refusing to load global 'numpy\.core\.multiarray\.scalar'/,
    );
    assert.ok(error instanceof ForbiddenGlobalError);
    assert.equal(error.qualifiedName, 'numpy.core.multiarray.scalar');
  });

  it('refuses a numpy dtype it cannot represent, naming the global', () => {
    // _reconstruct(ndarray, (0,), b'b') then BUILD with a uint32 ('u4') dtype.
    const pickle = bytes(
      '\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R' +
        '(K\x01K\x01\x85cnumpy\ndtype\nX\x02\x00\x00\x00u4\x89\x88\x87R(K\x03X\x01\x00\x00\x00<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89C\x04\x01\x00\x00\x00tb.',
    );
    refuses(
      pickle,
      { allow: NUMPY_READER },
      /numpy\.core\.multiarray\._reconstruct: numpy dtype 'u4' has no RawTensor dtype/,
    );
  });
});

describe('unpickler: allow-list', () => {
  it('refuses builtins.eval, naming it', () => {
    const error = refuses(
      readFileSync(fixture('io', 'evil_builtins_eval.pkl')),
      { allow: NUMPY_READER },
      /refusing to load global 'builtins\.eval'/,
    );
    assert.equal((error as ForbiddenGlobalError).qualifiedName, 'builtins.eval');
  });

  it('refuses os.system, naming it', () => {
    refuses(
      readFileSync(fixture('io', 'evil_os_system.pkl')),
      { allow: NUMPY_READER },
      /refusing to load global 'os\.system'/,
    );
  });

  it('refuses INST and STACK_GLOBAL forms too', () => {
    refuses(bytes("(S'ls'\nios\nsystem\n."), {}, /'os\.system'/);
    refuses(bytes('\x80\x04\x8c\x08builtins\x8c\x04exec\x93.'), {}, /'builtins\.exec'/);
  });

  it('maps Python 2 module names (__builtin__ -> builtins)', () => {
    assert.deepEqual(
      unpickle(bytes('c__builtin__\nset\n((lI1\naI2\natR.'), { allow: PYTHON_DATA_GLOBALS }),
      new Set([1, 2]),
    );
  });

  it('keeps instances of an opaque allowed class with their BUILD state', () => {
    const allow = combineAllowLists(
      PYTHON_DATA_GLOBALS,
      new Map([['argparse.Namespace', opaqueClass('argparse.Namespace')]]),
    );
    const value = unpickle(
      bytes('\x80\x02cargparse\nNamespace\n)\x81}X\x02\x00\x00\x00lrG?\xb9\x99\x99\x99\x99\x99\x9asb.'),
      { allow },
    );
    assert.ok(value instanceof PyObject);
    assert.equal(value.qualifiedName, 'argparse.Namespace');
    assert.deepEqual(value.state, new Map([['lr', 0.1]]));
  });

  it('passes value-only globals through and refuses to call them', () => {
    const allow = new Map([['numpy.ndarray', {}]]);
    const value = unpickle(bytes('\x80\x02cnumpy\nndarray\n.'), { allow });
    assert.ok(value instanceof PyGlobal && value.qualifiedName === 'numpy.ndarray');
    refuses(
      bytes('\x80\x02cnumpy\nndarray\n)R.'),
      { allow },
      /'numpy\.ndarray' is allowed as a value but not callable/,
    );
  });
});

describe('unpickler: opcodes', () => {
  const read = (text: string, options: Partial<UnpickleOptions> = {}): unknown =>
    unpickle(bytes(text), { allow: PYTHON_DATA_GLOBALS, ...options });

  it('reads protocol-0 literals: ints, bools, longs, floats, strings', () => {
    assert.deepEqual(read('(I01\nI00\nI-7\nL123456789012345678901234567890L\nF-1.25\nFinf\nNt.'), [
      true,
      false,
      -7,
      123456789012345678901234567890n,
      -1.25,
      Infinity,
      null,
    ]);
    assert.equal(read("S'a\\n\\x41\\'\\\\\\101'\n."), "a\nA'\\A");
    assert.equal(read('Vcaf\\u00e9 \\U0001f600\n.'), 'caf\u00e9 \u{1f600}');
  });

  it("reads binary integers, including LONG1/LONG4 two's complement", () => {
    assert.deepEqual(
      read(
        '\x80\x02(K\xffM\xff\xffJ\x00\x00\x00\x80\x8a\x01\xff\x8a\x00\x8a\x02\x00\x80\x8b\x09\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01t.',
      ),
      [255, 65535, -(2 ** 31), -1, 0, -32768, 2n ** 64n],
    );
  });

  it('returns Python 2 strings as latin-1 text, UTF-8 text or bytes, as asked', () => {
    const pickle = 'U\x02\xc3\xa9.';
    assert.equal(read(pickle), '\u00c3\u00a9');
    assert.equal(read(pickle, { python2Strings: 'utf8' }), '\u00e9');
    assert.deepEqual(read(pickle, { python2Strings: 'bytes' }), Uint8Array.from([0xc3, 0xa9]));
  });

  it('hands persistent ids (PERSID and BINPERSID) to the callback', () => {
    const seen: unknown[] = [];
    const persistentLoad = (pid: unknown): string => {
      seen.push(pid);
      return `loaded ${seen.length}`;
    };
    assert.deepEqual(read('\x80\x02(Pabc\nX\x01\x00\x00\x00xK\x02\x86Qt.', { persistentLoad }), [
      'loaded 1',
      'loaded 2',
    ]);
    assert.deepEqual(seen, ['abc', ['x', 2]]);
    refuses(bytes('\x80\x02K\x01Q.'), {}, /persistent id found, but this reader takes none/);
  });

  it('reads dicts, lists, sets, frozensets and memo references', () => {
    const dict = read('\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00}\x94(K\x01]\x94(K\x02K\x03eK\x04h\x01u.') as Map<
      number,
      unknown
    >;
    assert.deepEqual(
      dict,
      new Map([
        [1, [2, 3]],
        [4, [2, 3]],
      ]),
    );
    assert.equal(dict.get(1), dict.get(4));
    assert.deepEqual(read('\x80\x04\x8f(K\x05K\x06\x90.'), new Set([5, 6]));
    assert.deepEqual(read('\x80\x04(K\x01K\x01\x91.'), new Set([1]));
    assert.deepEqual(read('(dp0\nVk\np1\n(lp2\nI1\nag1\nas.'), new Map([['k', [1, 'k']]]));
  });

  const malformed: Array<[string, string, RegExp]> = [
    ['an unknown opcode', '\x80\x02\xff', /unknown opcode 0xff/],
    ['a protocol above 5', '\x80\x06N.', /unsupported pickle protocol 6/],
    ['bytes after STOP', 'N.N', /1 bytes follow the STOP opcode/],
    ['a stack underflow', '\x80\x02R.', /stack underflow/],
    ['a missing memo entry', '\x80\x02h\x05.', /memo entry 5 was never stored/],
    ['a missing MARK', '\x80\x02t.', /no MARK on the stack/],
    ['BUILD on a plain value', '\x80\x02K\x01}b.', /BUILD on a number is not supported/],
    ['APPEND to a dict', '\x80\x02}K\x01a.', /APPEND to something that is not a list/],
    ['out-of-band buffers', '\x80\x05\x97.', /NEXT_BUFFER/],
    ['extension codes', '\x80\x02\x82\x01.', /EXT1/],
    ['a length past the end', '\x80\x02X\xff\xff\xff\x7fabc.', /truncated pickle: needs 2147483647 bytes/],
    ['a huge 8-byte length', '\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\x7f.', /impossibly large/],
    ['a frame longer than the data', '\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00N.', /truncated pickle/],
    ['no STOP', '\x80\x02N', /truncated pickle/],
    ['an unterminated text line', 'I12', /unterminated line/],
    ['a bad integer literal', 'I1x\n.', /bad integer literal '1x'/],
    ['a code point beyond U+10FFFF', 'V\\U00110000\n.', /\\U00110000 is beyond U\+10FFFF/],
  ];
  for (const [what, text, pattern] of malformed) {
    it(`refuses ${what}`, () => {
      refuses(bytes(text), {}, pattern);
    });
  }

  it('gives a CheckpointFormatError naming the source at every truncation point', () => {
    for (const name of ['numpy_p0.pkl', 'numpy_p2.pkl', 'numpy_p5.pkl']) {
      const data = readFileSync(fixture('io', name));
      for (let cut = 0; cut < data.length; cut++) refuses(data.subarray(0, cut), { allow: NUMPY_READER }, /./);
    }
  });

  it('gives a value or a CheckpointFormatError, never another error, for any flipped byte', () => {
    for (const name of ['numpy_p1.pkl', 'numpy_p4.pkl']) {
      const data = readFileSync(fixture('io', name));
      for (let position = 0; position < data.length; position++) {
        for (const mask of [0x01, 0x80, 0xff]) {
          const corrupt = Buffer.from(data);
          corrupt[position] = corrupt[position]! ^ mask;
          try {
            unpickle(corrupt, { allow: NUMPY_READER, source: 'flipped.pkl' });
          } catch (error) {
            assert.ok(error instanceof CheckpointFormatError, `${name} byte ${position}: ${String(error)}`);
            assert.match(error.message, /^flipped\.pkl: /);
          }
        }
      }
    }
  });
});
