// The page of `vilbert serve` in a real browser: headless Chromium (Debian's `chromium`, which
// CI installs) driven by puppeteer-core loads the page, asks a VQA question and a grounding
// expression on a world scene, and finds the API's answers written and its box drawn.
// VILBERT_SERVE_SCREENSHOTS=<dir> keeps the two screenshots there (docs/ holds the committed ones).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import type { RunningServer } from '../../src/serve/server.js';
import { post, serveFixture, serveWorld, type Json } from './fixture.js';

const CHROMIUM = '/usr/bin/chromium';

describe(
  'vilbert serve: the page in headless Chromium',
  { skip: !existsSync(CHROMIUM) && `${CHROMIUM} is missing (apt-get install chromium)` },
  () => {
    let server: RunningServer;
    let browser: Browser;
    let page: Page;
    const profile = mkdtempSync(join(tmpdir(), 'vilbert-chromium-'));
    const shots = process.env.VILBERT_SERVE_SCREENSHOTS ?? profile;

    before(async () => {
      server = await serveWorld(serveFixture());
      browser = await puppeteer.launch({
        executablePath: CHROMIUM,
        // Without the background-networking flags Chromium's own connections are refused on a closed network.
        args: [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
          `--user-data-dir=${profile}`,
        ],
      });
      page = await browser.newPage();
      await page.setViewport({ width: 1100, height: 900 });
      const problems: string[] = [];
      page.on('pageerror', (error) => problems.push(String(error)));
      await page.goto(server.url, { waitUntil: 'networkidle0' });
      await page.waitForSelector('body[data-ready="true"]', { timeout: 10_000 });
      assert.deepEqual(problems, []);
    });
    after(async () => {
      await browser?.close();
      await server?.close();
      rmSync(profile, { recursive: true, force: true });
    });

    /** Picks a task and an image with the keyboard and mouse as a person would, types the text and asks. */
    async function ask(task: string, text: string, imageIndex: number): Promise<string> {
      await page.select('#task', task);
      await page.waitForFunction("document.querySelectorAll('#gallery .thumb').length > 0");
      const thumbs = await page.$$('#gallery .thumb');
      await thumbs[imageIndex]!.click();
      const id = await page.$eval('#chosen', (node) => node.textContent!.replace('Image: ', ''));
      await page.click('#text', { count: 3 });
      await page.type('#text', text);
      await page.keyboard.press('Enter');
      await page.waitForFunction("document.querySelector('#status').textContent === 'Done.'", { timeout: 10_000 });
      return id;
    }

    it('answers a VQA question with the answers the API gives', async () => {
      const id = await ask('vqa', 'what color is the ball?', 2);
      const shown = await page.$$eval('#answers li', (rows) =>
        rows.map((row) => [row.querySelector('.answer')!.textContent, row.querySelector('.score')!.textContent]),
      );
      const { json } = await post(new URL('/api/vqa', server.url).href, {
        image: id,
        text: 'what color is the ball?',
        topk: 5,
      });
      assert.deepEqual(
        shown,
        json.result.map((entry: Json) => [entry.answer, entry.score.toFixed(3)]),
      );
      assert.match(await page.$eval('#timing', (node) => node.textContent!), /^Answered in \d+ ms: model \d+ ms/);
      await page.screenshot({ path: join(shots, 'serve-vqa.png') });
    });

    it('draws the box of a grounding expression over the picture', async () => {
      const id = await ask('ground', 'the red ball', 3);
      const drawn = await page.$$eval('#stage svg.overlay rect.box', (rects) =>
        rects.map((rect) => ({
          box: rect.getAttribute('data-box'),
          x: Number(rect.getAttribute('x')),
          width: Number(rect.getAttribute('width')),
          main: !rect.classList.contains('other'),
        })),
      );
      const { json } = await post(new URL('/api/ground', server.url).href, {
        image: id,
        text: 'the red ball',
        topk: 5,
      });
      assert.equal(drawn.length, json.result.length);
      const [best] = json.result as Json[];
      assert.deepEqual(drawn[0], {
        box: best.box.join(','),
        x: best.box[0],
        width: best.box[2] - best.box[0],
        main: true,
      });
      // The overlay covers the picture in the image's own pixels.
      const viewBox = await page.$eval('#stage svg.overlay', (svg) => svg.getAttribute('viewBox'));
      const detail = (await (await fetch(new URL(`/api/images/${encodeURIComponent(id)}`, server.url))).json()) as Json;
      assert.equal(viewBox, `0 0 ${detail.width} ${detail.height}`);
      await page.screenshot({ path: join(shots, 'serve-ground.png') });
    });

    it('reads on a phone-width window: one column, nothing wider than the screen', async () => {
      await page.setViewport({ width: 390, height: 844 });
      const widths = (await page.evaluate(`({
      page: document.documentElement.scrollWidth,
      window: window.innerWidth,
      columns: getComputedStyle(document.querySelector('main')).gridTemplateColumns.split(' ').length,
    })`)) as { page: number; window: number; columns: number };
      await page.screenshot({ path: join(shots, 'serve-phone.png'), fullPage: true });
      assert.equal(widths.columns, 1);
      assert.ok(widths.page <= widths.window, `the page is ${widths.page} px wide in a ${widths.window} px window`);
    });
  },
);
