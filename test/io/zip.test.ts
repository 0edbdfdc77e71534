import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CheckpointFormatError } from '../../src/io/format-error.js';
import { crc32, portableCrc32, readZipMembers, writeZip } from '../../src/io/zip.js';
import { fixture } from './fixtures.js';

const text = (value: string): Uint8Array => new TextEncoder().encode(value);
const decode = (bytes: Uint8Array | undefined): string => new TextDecoder().decode(bytes);

function rejects(archive: Uint8Array, pattern: RegExp): void {
  assert.throws(
    () => readZipMembers(archive, 'bad.zip'),
    (error: unknown) =>
      error instanceof CheckpointFormatError && /^bad\.zip: /.test(error.message) && pattern.test(error.message),
  );
}

describe('zip', () => {
  it('computes CRC-32 (check value of "123456789"), natively and portably alike', () => {
    for (const checksum of [crc32, portableCrc32]) {
      assert.equal(checksum(text('123456789')), 0xcbf43926);
      assert.equal(checksum(new Uint8Array(0)), 0);
    }
    const data = Uint8Array.from({ length: 10_000 }, (_, i) => (i * 7919) % 251);
    assert.equal(crc32(data), portableCrc32(data));
    // Large members go to the addon, which checksums 1 MiB chunks in parallel and combines them.
    const MiB = 1 << 20;
    const large = Uint8Array.from({ length: 3 * MiB + 5 }, (_, i) => (i * 2654435761) >>> 24);
    for (const length of [MiB - 1, MiB, MiB + 1, 2 * MiB, 3 * MiB + 5]) {
      for (const offset of [0, 3]) {
        const slice = large.subarray(offset, offset + length - offset);
        assert.equal(crc32(slice), portableCrc32(slice), `${slice.length} bytes at offset ${offset}`);
      }
    }
  });

  it("round-trips stored members, each one's data aligned to 64 bytes", () => {
    const members = [
      { name: 'archive/data.pkl', data: text('pickle bytes') },
      { name: 'archive/data/0', data: new Uint8Array(100).fill(7) },
      { name: 'archive/empty', data: new Uint8Array(0) },
      { name: 'archive/version', data: text('3\n') },
    ];
    const archive = writeZip(members);
    const read = readZipMembers(archive, 'written.zip');
    assert.deepEqual(
      [...read.keys()],
      members.map((member) => member.name),
    );
    for (const member of members) {
      const data = read.get(member.name)!;
      assert.deepEqual([...data], [...member.data]);
      assert.equal((data.byteOffset - archive.byteOffset) % 64, 0, member.name);
    }
  });

  it('reads ZIP64 extra fields and the ZIP64 end record (Python-written fixture)', () => {
    const archive = readFileSync(fixture('io', 'zip64.zip'));
    const expectMembers = (bytes: Uint8Array): void => {
      const members = readZipMembers(bytes, 'zip64.zip');
      assert.equal(decode(members.get('archive/first')), 'more than sixteen bytes of data');
      assert.equal(decode(members.get('archive/second')), 'short');
    };
    expectMembers(archive);
    // Mark the classic end record's count and offset as "see ZIP64", as large archives do.
    const patched = Buffer.from(archive);
    const end = patched.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
    patched.writeUInt16LE(0xffff, end + 10);
    patched.writeUInt32LE(0xffffffff, end + 16);
    expectMembers(patched);
  });

  it('refuses corrupt archives with errors naming the file and member', () => {
    const archive = writeZip([{ name: 'a/data.pkl', data: text('hello') }]);
    rejects(archive.subarray(0, 30), /no zip end-of-central-directory record/);
    rejects(new Uint8Array(10), /no zip end-of-central-directory record/);

    const flippedData = Buffer.from(archive);
    flippedData[64] = flippedData[64]! ^ 1;
    rejects(flippedData, /'a\/data\.pkl': CRC-32 mismatch/);

    const compressed = Buffer.from(archive);
    const central = compressed.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    compressed.writeUInt16LE(8, central + 10);
    rejects(compressed, /'a\/data\.pkl': uses zip compression method 8/);

    const badOffset = Buffer.from(archive);
    badOffset.writeUInt32LE(0x7fffffff, central + 42);
    rejects(badOffset, /truncated zip local header/);

    const badDirectory = Buffer.from(archive);
    badDirectory[central] = 0;
    rejects(badDirectory, /central directory entry 0 has a bad signature/);

    const twice = writeZip([
      { name: 'a/x', data: text('1') },
      { name: 'a/x', data: text('2') },
    ]);
    rejects(twice, /'a\/x': appears twice/);

    const renamed = Buffer.from(archive);
    renamed[30] = 'b'.charCodeAt(0); // the local header's copy of the name
    rejects(renamed, /'a\/data\.pkl': its local header names another member than the central directory does/);
  });

  it("refuses a member outside the first member's folder, naming it, before reading any member's data", () => {
    const escapes: Array<[string, RegExp]> = [
      ['/etc/passwd', /is an absolute path/],
      ['../evil', /has a '\.\.' component/],
      ['archive/../evil', /has a '\.\.' component/],
      ['archive/data/../../evil', /has a '\.\.' component/],
      ['archive\\..\\evil', /has a backslash in its name \(a folder separator on Windows\)/],
      ['C:/evil', /starts with a drive letter/],
      ['C:evil', /starts with a drive letter/],
      ['evil', /is not inside a folder/],
      ['archive//evil', /has an empty or '\.' component/],
      ['archive/./evil', /has an empty or '\.' component/],
      ['archive/evil\0.pkl', /has a control character in its name/],
      ['other/data.pkl', /lies outside 'archive\/', the first member's folder \(a second root\)/],
    ];
    for (const [name, problem] of escapes) {
      // The first member's CRC is wrong: the name must be refused before any data is read.
      const archive = Buffer.from(
        writeZip([
          { name: 'archive/data.pkl', data: text('pickle') },
          { name, data: text('payload') },
        ]),
      );
      archive[64] = archive[64]! ^ 1;
      const shown = name.replace('\0', '\\x00').replace(/[.\\]/g, '\\$&');
      rejects(
        archive,
        new RegExp(
          `^bad\\.zip: '${shown}': ${problem.source}: a torch checkpoint keeps its members inside one root folder$`,
        ),
      );
    }
    // The first member names the root; a lone bad first member is refused as well.
    rejects(writeZip([{ name: '../data.pkl', data: text('x') }]), /'\.\.\/data\.pkl': has a '\.\.' component/);
    // Folder entries (as zip tools add them) are inside the root.
    const withFolders = readZipMembers(
      writeZip([
        { name: 'archive/', data: new Uint8Array(0) },
        { name: 'archive/data/', data: new Uint8Array(0) },
        { name: 'archive/data/0', data: text('x') },
      ]),
      'folders.zip',
    );
    assert.deepEqual([...withFolders.keys()], ['archive/', 'archive/data/', 'archive/data/0']);
  });
});
