import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MetricsFormatError, MetricsLog, readMetrics } from '../../src/report/metrics-log.js';

function withDir(body: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'metrics-'));
  try {
    body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const line = (tag: string, step: number, value: number) =>
  `${JSON.stringify({ tag, step, value, time: 1733100000 + step })}\n`;

test('scalars round-trip by tag, ordered by step, with non-finite values and times', () => {
  withDir((dir) => {
    const path = join(dir, 'nested', 'metrics.jsonl');
    const log = new MetricsLog(path);
    const before = Date.now() / 1000;
    log.scalar('train/refcoco+_loss', 2, 0.25);
    log.scalar('train/refcoco+_loss', 1, 0.5);
    log.scalar('val/VQA_score', 1, Number.NaN);
    log.scalar('val/VQA_score', 2, Number.POSITIVE_INFINITY);
    log.scalar('val/VQA_score', 3, Number.NEGATIVE_INFINITY);
    log.flush();
    log.close();
    log.close();
    assert.throws(() => log.scalar('train/lr', 4, 1), /metrics log is closed/);
    const series = readMetrics(path);
    assert.deepEqual([...series.keys()], ['train/refcoco+_loss', 'val/VQA_score']);
    assert.deepEqual(
      series.get('train/refcoco+_loss')!.map((point) => [point.step, point.value]),
      [
        [1, 0.5],
        [2, 0.25],
      ],
    );
    assert.deepEqual(
      series.get('val/VQA_score')!.map((point) => point.value),
      [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY],
    );
    for (const point of series.get('val/VQA_score')!)
      assert.ok(point.time >= before - 1 && point.time <= Date.now() / 1000 + 1);
    assert.equal(readFileSync(path, 'utf8').split('\n').length, 6, 'one line per scalar');
    const other = new MetricsLog(join(dir, 'other.jsonl'));
    assert.throws(() => other.scalar('', 1, 1), /non-empty/);
    assert.throws(() => other.scalar('x', Number.NaN, 1), /step of x must be a finite number/);
    other.close();
  });
});

test('a truncated last line (killed run) is skipped and reported; the rest is read', () => {
  withDir((dir) => {
    const path = join(dir, 'metrics.jsonl');
    writeFileSync(path, line('train/VQA_loss', 1, 0.9) + line('train/VQA_loss', 2, 0.8) + '{"tag": "train/VQA_lo');
    const truncated: number[] = [];
    const series = readMetrics(path, { onTruncatedLine: (lineNumber) => truncated.push(lineNumber) });
    assert.deepEqual(
      series.get('train/VQA_loss')!.map((point) => point.value),
      [0.9, 0.8],
    );
    assert.deepEqual(truncated, [3]);
    // Trailing blank lines do not hide which line is the last one.
    appendFileSync(path, '\n\n');
    assert.equal(readMetrics(path).get('train/VQA_loss')!.length, 2);
  });
});

test('a broken line in the middle is an error naming its line; so is a complete but wrong last line', () => {
  withDir((dir) => {
    const path = join(dir, 'metrics.jsonl');
    writeFileSync(path, line('a/b', 1, 1) + '\n' + '{"tag": "a/b", "step": 2, "val\n' + line('a/b', 3, 3));
    assert.throws(
      () => readMetrics(path),
      (error: unknown) => {
        assert.ok(error instanceof MetricsFormatError);
        assert.equal(error.line, 3);
        assert.match(error.message, /metrics\.jsonl:3: not a JSON line/);
        return true;
      },
    );
    writeFileSync(path, line('a/b', 1, 1) + '{"tag": "a/b", "step": 2}\n');
    assert.throws(() => readMetrics(path), /metrics\.jsonl:2: 'value' of a\/b must be a number/);
    writeFileSync(path, '[1, 2]\n' + line('a/b', 1, 1));
    assert.throws(() => readMetrics(path), /metrics\.jsonl:1: expected an object/);
    writeFileSync(path, '{"tag": "a/b", "step": "3", "value": 1}\n' + line('a/b', 1, 1));
    assert.throws(() => readMetrics(path), /:1: 'step' of a\/b must be a number, found "3"/);
  });
});

test("appending to a killed run's log drops its broken fragment, or ends its complete last line", () => {
  withDir((dir) => {
    const path = join(dir, 'metrics.jsonl');
    writeFileSync(path, line('t/x', 1, 1) + '{"tag": "t/x", "st');
    let log = new MetricsLog(path, { append: true });
    log.scalar('t/x', 2, 2);
    log.close();
    assert.deepEqual(
      readMetrics(path)
        .get('t/x')!
        .map((point) => point.step),
      [1, 2],
    );
    writeFileSync(path, line('t/x', 1, 1).trimEnd());
    log = new MetricsLog(path, { append: true });
    log.scalar('t/x', 2, 2);
    log.close();
    assert.deepEqual(
      readMetrics(path)
        .get('t/x')!
        .map((point) => point.step),
      [1, 2],
    );
    log = new MetricsLog(path);
    log.close();
    assert.equal(readFileSync(path, 'utf8'), '', 'without append the log starts empty');
  });
});

test('truncateAfter keeps only steps before the resume step, atomically, and logging continues', () => {
  withDir((dir) => {
    const path = join(dir, 'metrics.jsonl');
    const first = new MetricsLog(path);
    for (let step = 0; step < 10; step += 1) {
      first.scalar('train/VQA_loss', step, 1 / (step + 1));
      if (step % 3 === 0) first.scalar('val/VQA_score', step, step / 10);
    }
    first.close();
    const kept = readFileSync(path, 'utf8')
      .split('\n')
      .filter((text) => text !== '' && JSON.parse(text).step < 5);
    appendFileSync(path, '{"tag": "train/VQA_loss", "step": 10, "va'); // killed mid-line

    const resumed = new MetricsLog(path, { append: true });
    resumed.truncateAfter(5);
    assert.equal(
      readFileSync(path, 'utf8'),
      kept.map((text) => `${text}\n`).join(''),
      'kept lines are unchanged bytes',
    );
    resumed.scalar('train/VQA_loss', 5, 0.1);
    resumed.close();

    const series = readMetrics(path);
    assert.deepEqual(
      series.get('train/VQA_loss')!.map((point) => point.step),
      [0, 1, 2, 3, 4, 5],
    );
    assert.deepEqual(
      series.get('val/VQA_score')!.map((point) => point.step),
      [0, 3],
    );
    assert.deepEqual(readdirSync(dir), ['metrics.jsonl'], 'no temporary file left');
  });
});
