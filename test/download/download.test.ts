// `vilbert download`'s library side against a loopback server: the reference's layout, resume
// with Range after a cut, sizes refused, hostile archives refused, 404, refused connections
// and stalls named by their address, and what completed staying.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixture } from '../io/fixtures.js';
import { startServer, tarGz, type TestServer } from './server.js';
import {
  DownloadError,
  UnsafeArchiveError,
  catalogue,
  downloadFile,
  downloadPublished,
  selectFiles,
  unpackTarGz,
} from '../../src/download/index.js';
import { ImageFeatureReader } from '../../src/data/features.js';

const KIT = fixture('datasets', 'kit', 'datasets');
const GQA = 'datasets/gqa/gqa_resnext152_faster_rcnn_genome.lmdb/data.mdb';
const COCO = 'datasets/coco/features_100/COCO_trainval_resnext152_faster_rcnn_genome.lmdb/data.mdb';
const COCO_TEST = 'datasets/coco/features_100/COCO_test_resnext152_faster_rcnn_genome.lmdb/data.mdb';
const NLVR2 = 'datasets/nlvr2/nlvr2_resnext152_faster_rcnn_genome.lmdb/data.mdb';
const REFCOCO = 'datasets/refcoco/refcoco_unc/refcoco_resnext152_faster_rcnn_genome.lmdb/data.mdb';

const scratch = mkdtempSync(join(tmpdir(), 'vilbert-download-'));
let count = 0;
function folder(): string {
  count += 1;
  return join(scratch, String(count));
}

/** Bytes 0..n-1 mod 251: a body whose every prefix and offset is recognisable. */
function body(n: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, index) => index % 251);
}

async function rejectsDownload(
  promise: Promise<unknown>,
  reason: DownloadError['reason'],
  message: RegExp,
): Promise<DownloadError> {
  let caught: unknown;
  await assert.rejects(promise, (error) => {
    caught = error;
    return true;
  });
  assert.ok(caught instanceof DownloadError, `expected a DownloadError, got ${String(caught)}`);
  assert.equal(caught.code, 'E_DOWNLOAD');
  assert.equal(caught.reason, reason, caught.message);
  assert.match(caught.message, message);
  return caught;
}

let server: TestServer;
before(async () => {
  const annotations = tarGz([
    { path: 'datasets/' },
    { path: 'datasets/VQA/cache/trainval_label2ans.json', content: '["yes","no"]' },
    {
      path: REFCOCO,
      content: readFileSync(join(KIT, 'refcoco/refcoco_unc/refcoco_resnext152_faster_rcnn_genome.lmdb/data.mdb')),
    },
    { path: 'datasets/refcoco/latest', link: { type: '2', target: 'refcoco_unc' } },
  ]);
  const lmdb = readFileSync(join(KIT, 'gqa/gqa_resnext152_faster_rcnn_genome.lmdb/data.mdb'));
  server = await startServer(
    new Map([
      ['multi_task_model.bin', { body: body(3000) }],
      ['pretrained_model.bin', { body: body(2000) }],
      ['detectron_model.pth', { body: body(1000) }],
      ['detectron_config.yaml', { body: Buffer.from('MODEL:\n  META_ARCHITECTURE: GeneralizedRCNN\n') }],
      ['datasets.tar.gz', { body: annotations }],
      [GQA, { body: lmdb }],
      [COCO, { body: lmdb }],
      [COCO_TEST, { body: lmdb }],
      [NLVR2, { body: lmdb }],
      ['cut.bin', { body: body(100_000), behaviour: 'cut-once' }],
      ['cut-retried.bin', { body: body(100_000), behaviour: 'cut-once' }],
      ['stall.bin', { body: body(100_000), behaviour: 'stall' }],
      ['short.bin', { body: body(5000), behaviour: 'wrong-length' }],
      ['plain.bin', { body: body(5000) }],
      ['huge.bin', { body: body(10), behaviour: 'huge-length' }],
    ]),
  );
});
after(async () => {
  await server.close();
  rmSync(scratch, { recursive: true, force: true });
});

describe('the catalogue', () => {
  it("names the reference's files, tasks by their names, and refuses unknown names", () => {
    const names = catalogue().map((entry) => entry.name);
    for (const name of [
      'pretrained',
      'multi-task',
      'bert-base-uncased',
      'detector',
      'annotations',
      'vqa',
      'refcoco',
      'refcoco+',
      'nlvr2',
      'gqa',
      'vcr',
      'all',
    ])
      assert.ok(names.includes(name), `${name} missing from ${names.join(', ')}`);
    assert.deepEqual(
      selectFiles(['vqa']).map((file) => file.target),
      [COCO, COCO_TEST],
    );
    // refcoco's features come inside datasets.tar.gz.
    assert.deepEqual(
      selectFiles(['refcoco']).map((file) => file.remote),
      ['datasets.tar.gz'],
    );
    assert.deepEqual(
      selectFiles(['all'])
        .map((file) => file.remote)
        .sort(),
      ['datasets.tar.gz', COCO, COCO_TEST, GQA, NLVR2].sort(),
    );
    assert.throws(
      () => selectFiles(['imagenet']),
      /'imagenet' is not a published file set; known: pretrained, multi-task/,
    );
  });
});

describe('downloadPublished', () => {
  it('lays files out as the reference does, unpacks the archive, and fetches nothing twice', async () => {
    const dir = folder();
    const cacheDir = folder();
    const events: string[] = [];
    const summary = await downloadPublished(['all', 'multi-task', 'detector'], {
      dir,
      cacheDir,
      mirror: server.base,
      onEvent: (event) => events.push(event.kind),
    });
    assert.deepEqual(summary.failed, []);
    for (const path of [
      COCO,
      COCO_TEST,
      GQA,
      NLVR2,
      REFCOCO,
      'datasets/VQA/cache/trainval_label2ans.json',
      'data/detectron_model.pth',
      'data/detectron_config.yaml',
    ])
      assert.ok(existsSync(join(dir, path)), `${path} missing`);
    assert.deepEqual(readFileSync(join(cacheDir, 'multi_task_model.bin')), Buffer.from(body(3000)));
    assert.ok(!existsSync(join(dir, '.vilbert-downloads', 'datasets.tar.gz')), 'the archive is removed once unpacked');
    assert.ok(existsSync(join(dir, '.vilbert-downloads', 'datasets.tar.gz.unpacked.json')));
    assert.ok(['progress', 'done', 'unpacking', 'unpacked'].every((kind) => events.includes(kind)));
    // The features are LMDBs our reader opens.
    const reader = ImageFeatureReader.open(join(dir, 'datasets/gqa/gqa_resnext152_faster_rcnn_genome.lmdb'));
    assert.ok(reader.length > 0);
    reader.close();
    const leftovers = readdirSync(dir, { recursive: true })
      .map(String)
      .filter((name) => /\.(part|lock)$/.test(name));
    assert.deepEqual(leftovers, []);

    const requestsBefore = server.requests.length;
    const again = await downloadPublished(['all', 'multi-task', 'detector'], { dir, cacheDir, mirror: server.base });
    assert.equal(server.requests.length, requestsBefore, 'complete files are not fetched again');
    assert.ok(again.done.every((entry) => !entry.fetched));
  });

  it('goes on after a failure; what completed stays', async () => {
    const dir = folder();
    const mirror = `${server.base}missing/`;
    const partial = await downloadPublished(['detector'], { dir, mirror: server.base });
    assert.equal(partial.failed.length, 0);
    const summary = await downloadPublished(['gqa', 'detector'], { dir, mirror });
    assert.equal(summary.failed.length, 1);
    assert.match(summary.failed[0]!.error.message, new RegExp(`^${mirror}${GQA}: HTTP 404`));
    assert.ok(existsSync(join(dir, 'data/detectron_model.pth')));
  });
});

describe('downloadFile', () => {
  it('resumes with a Range request after a cut connection', async () => {
    const target = join(folder(), 'cut.bin');
    const url = `${server.base}cut.bin`;
    const cut = await rejectsDownload(
      downloadFile(url, target, { retries: 0 }),
      'truncated',
      /cut\.bin: the transfer was cut after/,
    );
    assert.equal(cut.file, target);
    const kept = statSync(`${target}.part`).size;
    assert.ok(kept > 0 && kept < 100_000, `part of ${kept} bytes`);
    assert.ok(!existsSync(target), 'nothing under the final name until complete');
    const result = await downloadFile(url, target);
    assert.equal(result.resumedFrom, kept);
    assert.deepEqual(server.requests.filter((request) => request.path === 'cut.bin').at(-1)?.range, `bytes=${kept}-`);
    assert.deepEqual(readFileSync(target), Buffer.from(body(100_000)));
    assert.ok(!existsSync(`${target}.part`));
  });

  it('retries a cut transfer by itself, from where it stopped', async () => {
    const target = join(folder(), 'cut-retried.bin');
    await downloadFile(`${server.base}cut-retried.bin`, target);
    assert.deepEqual(readFileSync(target), Buffer.from(body(100_000)));
    const ranges = server.requests.filter((request) => request.path === 'cut-retried.bin').map((r) => r.range);
    assert.equal(ranges.length, 2);
    assert.match(ranges[1] ?? '', /^bytes=\d+-$/);
  });

  it('refuses a size that differs from the record, and a body shorter than announced', async () => {
    const dir = folder();
    await rejectsDownload(
      downloadFile(`${server.base}plain.bin`, join(dir, 'plain.bin'), { expectedSize: 4999 }),
      'size-mismatch',
      /plain\.bin: the server's file has 5,000 bytes, the published file 4,999 bytes/,
    );
    assert.deepEqual(
      readdirSync(dir).filter((name) => !name.endsWith('.lock')),
      [],
    );
    await rejectsDownload(
      downloadFile(`${server.base}short.bin`, join(dir, 'short.bin'), { retries: 0 }),
      'truncated',
      /short\.bin: the transfer was cut after [\d,]+ bytes of 5,001 bytes/,
    );
    assert.ok(!existsSync(join(dir, 'short.bin')));
  });

  it('names the address of a 404, a refused connection and a stalled server', async () => {
    const dir = folder();
    await rejectsDownload(
      downloadFile(`${server.base}nothing.bin`, join(dir, 'a')),
      'http-status',
      /nothing\.bin: HTTP 404 Not Found/,
    );
    const closed = await startServer();
    const port = new URL(closed.base).port;
    await closed.close();
    await rejectsDownload(
      downloadFile(`http://127.0.0.1:${port}/x.bin`, join(dir, 'b')),
      'connection',
      new RegExp(`^http://127\\.0\\.0\\.1:${port}/x\\.bin: no connection \\(ECONNREFUSED\\)`),
    );
    const started = Date.now();
    await rejectsDownload(
      downloadFile(`${server.base}stall.bin`, join(dir, 'c'), { stallTimeout: 0.3, retries: 0 }),
      'stalled',
      /stall\.bin: no data for 0\.3 s after 16 bytes; the part is kept/,
    );
    assert.ok(Date.now() - started < 5000);
    assert.equal(statSync(join(dir, 'c.part')).size, 16);
  });

  it('checks free space before a large file starts', async () => {
    const dir = folder();
    await rejectsDownload(
      downloadFile(`${server.base}huge.bin`, join(dir, 'huge.bin')),
      'disk-space',
      /huge\.bin: needs 1,125,899,906,842,624 bytes free in .*, which has [\d,]+ bytes/,
    );
    assert.ok(!existsSync(join(dir, 'huge.bin.part')));
  });
});

describe('unpackTarGz', () => {
  const hostile: [string, Parameters<typeof tarGz>[0][number], RegExp][] = [
    ['a parent step', { path: 'datasets/../../evil.txt', content: 'x' }, /would land outside the target folder/],
    ['an absolute path', { path: '/tmp/evil.txt', content: 'x' }, /has an absolute path/],
    [
      'a link out',
      { path: 'datasets/out', link: { type: '2', target: '../../etc' } },
      /links to '\.\.\/\.\.\/etc', outside/,
    ],
    [
      'an absolute link',
      { path: 'datasets/abs', link: { type: '2', target: '/etc/passwd' } },
      /links to the absolute path/,
    ],
    ['a hard link out', { path: 'datasets/hard', link: { type: '1', target: '../x' } }, /outside the target folder/],
    ['a device', { path: 'datasets/dev', type: '3' }, /is a CharacterDevice/],
  ];
  for (const [what, member, problem] of hostile) {
    it(`refuses an archive with ${what}, unpacking nothing`, async () => {
      const dir = folder();
      const archive = join(scratch, `hostile-${count}.tar.gz`);
      writeFileSync(archive, tarGz([{ path: 'datasets/ok.txt', content: 'fine' }, member]));
      let caught: unknown;
      await assert.rejects(unpackTarGz(archive, dir), (error) => {
        caught = error;
        return true;
      });
      assert.ok(caught instanceof UnsafeArchiveError, String(caught));
      assert.equal(caught.code, 'E_UNSAFE_ARCHIVE');
      assert.equal(caught.member, member.path);
      assert.match(caught.message, problem);
      assert.ok(!existsSync(join(dir, 'datasets')), 'nothing unpacked');
    });
  }

  it('a hostile datasets.tar.gz fails its download, and its archive is kept for inspection', async () => {
    const evil = await startServer(
      new Map([['datasets.tar.gz', { body: tarGz([{ path: '../escaped.txt', content: 'x' }]) }]]),
    );
    try {
      const dir = folder();
      const summary = await downloadPublished(['annotations'], { dir, mirror: evil.base });
      assert.equal(summary.failed.length, 1);
      assert.ok(summary.failed[0]!.error instanceof UnsafeArchiveError);
      assert.ok(!existsSync(join(dir, '..', 'escaped.txt')));
      assert.ok(!existsSync(join(dir, '.vilbert-downloads', 'datasets.tar.gz.unpacked.json')));
      assert.ok(existsSync(join(dir, '.vilbert-downloads', 'datasets.tar.gz')));
    } finally {
      await evil.close();
    }
  });
});
