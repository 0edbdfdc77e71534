// `vilbert serve`'s HTTP side on Node's own http module: the page (three static files from
// assets/serve, by name), the gallery's images and pictures, and POST /api/<task> through
// the queue to the one loaded model. Every refusal is a JSON error with a 4xx (5xx for the
// server's own failures) and the server keeps serving; no request names a path on disk.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { assetPath } from '../assets.js';
import { loadModelFolder } from '../pipelines/model-folder.js';
import { VilbertError } from '../vilbert-error.js';
import { BatchingQueue } from './queue.js';
import { ServeRequestError } from './serve-error.js';
import type { ServeSources } from './sources.js';
import { BATCHED_TASKS, TaskEngine, parseRequest, type ServeTask, type TaskRequest } from './tasks.js';

export interface ServeOptions {
  sources: ServeSources;
  /** Default 127.0.0.1: only this machine can reach the page. */
  host?: string;
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** --detector: accepted, but feature extraction does not exist yet, so upload stays off. */
  detector?: string;
  /** Requests of a VQA-style task run together, at most this many (default 16; 1 turns batching off). */
  maxBatch?: number;
  /** Waiting requests beyond this many get a 503 (default 256). */
  maxPending?: number;
  /** Largest request body in bytes (default 64 KiB). */
  maxBodyBytes?: number;
}

export interface RunningServer {
  url: string;
  engine: TaskEngine;
  /** Stops listening, then frees the model and closes the feature stores. */
  close(): Promise<void>;
}

const STATIC_FILES: Record<string, string> = {
  '/': 'index.html',
  '/index.html': 'index.html',
  '/app.js': 'app.js',
  '/app.css': 'app.css',
};
const CONTENT_TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};
const PAGE_POLICY =
  "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export const UPLOAD_UNAVAILABLE =
  'uploading images needs feature extraction (a Faster R-CNN detector in vilbert-ts), which is not implemented yet: ' +
  'pick an image of the gallery, or extract features with the reference detector (docs/INFERENCE.md#your-own-images)';

const LIST_LIMIT = 200;

function send(res: ServerResponse, status: number, body: Buffer | string, contentType: string, extra = {}): void {
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...extra,
  });
  res.end(body);
}

const sendJson = (res: ServerResponse, status: number, value: unknown) =>
  send(res, status, `${JSON.stringify(value)}\n`, 'application/json; charset=utf-8');

function sendError(res: ServerResponse, error: unknown): void {
  if (error instanceof ServeRequestError)
    return sendJson(res, error.status, { error: { code: error.code, message: error.problem } });
  // An image the pipelines refuse (a corrupt feature record, ...) is the request's problem.
  if (error instanceof VilbertError) return sendJson(res, 422, { error: { code: error.code, message: error.message } });
  sendJson(res, 500, {
    error: { code: 'E_INTERNAL', message: error instanceof Error ? error.message : String(error) },
  });
}

/** The body as JSON, refusing more than `limit` bytes (413) and anything but application/json (415). */
function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json')
      return reject(
        new ServeRequestError(415, `send the body as application/json (got '${type || 'no content type'}')`),
      );
    const declared = Number(req.headers['content-length'] ?? 0);
    const tooLarge = () => new ServeRequestError(413, `the body is over the limit of ${limit} bytes`);
    if (declared > limit) return reject(tooLarge());
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        reject(tooLarge());
      } else chunks.push(chunk);
    });
    req.on('error', reject);
    req.on('end', () => {
      if (size > limit) return;
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown);
      } catch (error) {
        reject(new ServeRequestError(400, `the body is not valid JSON (${(error as Error).message})`));
      }
    });
  });
}

/** The path, decoded; '..' anywhere in it (raw or decoded) is refused before anything is looked up. */
function requestPath(req: IncomingMessage): { path: string; query: URLSearchParams } {
  const raw = req.url ?? '/';
  const url = new URL(raw, 'http://localhost');
  let path: string;
  try {
    path = decodeURIComponent(url.pathname);
  } catch {
    throw new ServeRequestError(400, `the path '${url.pathname}' is not valid percent-encoding`);
  }
  if (raw.includes('..') || path.includes('..') || /%2e%2e/i.test(raw))
    throw new ServeRequestError(400, `paths with '..' are refused: '${raw}'`);
  return { path, query: url.searchParams };
}

function integerParameter(query: URLSearchParams, name: string, fallback: number, max: number): number {
  const value = query.get(name);
  if (value === null) return fallback;
  const parsed = Number(value);
  if (!/^\d+$/.test(value) || parsed > max)
    throw new ServeRequestError(400, `'${name}' must be an integer from 0 to ${max}`);
  return parsed;
}

export async function startServer(options: ServeOptions): Promise<RunningServer> {
  const { sources } = options;
  const maxBodyBytes = options.maxBodyBytes ?? 64 * 1024;
  const pages = Object.fromEntries(
    Object.values(STATIC_FILES).map((name) => [name, readFileSync(assetPath('serve', name))]),
  );
  const folder = loadModelFolder(sources.modelDir);
  let engine: TaskEngine;
  try {
    engine = await TaskEngine.open(folder, sources);
  } catch (error) {
    folder.model.dispose();
    throw error;
  }
  const queue = new BatchingQueue<ServeTask, TaskRequest, unknown>(
    (task, requests) => engine.run(task, requests),
    (task) => BATCHED_TASKS.has(task),
    { maxBatch: options.maxBatch ?? 16, maxPending: options.maxPending ?? 256 },
  );

  const health = () => ({
    status: 'ok',
    model: sources.modelDir,
    tasks: engine.status(),
    collections: sources.gallery.collections,
    upload: {
      available: false,
      reason: UPLOAD_UNAVAILABLE,
      ...(options.detector !== undefined && { detector: options.detector }),
    },
    queue: { pending: queue.pending, maxBatch: queue.options.maxBatch, batchedTasks: [...BATCHED_TASKS] },
    limits: { bodyBytes: maxBodyBytes },
  });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const { path, query } = requestPath(req);
    const method = req.method ?? 'GET';
    const only = (allowed: string) => {
      if (method !== allowed) throw new ServeRequestError(405, `${path} takes ${allowed}, not ${method}`);
    };
    const page = STATIC_FILES[path];
    if (page !== undefined) {
      only('GET');
      const type = CONTENT_TYPES[page.split('.').pop()!]!;
      return send(res, 200, pages[page]!, type, { 'content-security-policy': PAGE_POLICY });
    }
    if (path === '/api/health') {
      only('GET');
      return sendJson(res, 200, health());
    }
    if (path === '/api/images') {
      only('GET');
      const collection = query.get('collection') ?? sources.gallery.collections[0]?.name ?? '';
      const offset = integerParameter(query, 'offset', 0, Number.MAX_SAFE_INTEGER);
      const limit = integerParameter(query, 'limit', 50, LIST_LIMIT);
      return sendJson(res, 200, {
        collections: sources.gallery.collections,
        collection,
        offset,
        ...sources.gallery.list(collection, offset, limit),
      });
    }
    const image = /^\/api\/images\/([^/]+)(\/picture)?$/.exec(path);
    if (image) {
      only('GET');
      const [, id, picture] = image;
      if (picture === undefined) return sendJson(res, 200, sources.gallery.detail(id!));
      const { body, contentType } = sources.gallery.picture(id!, query.get('labels') !== '0');
      return send(res, 200, body, contentType, {
        'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
      });
    }
    if (path === '/api/upload') {
      only('POST');
      throw new ServeRequestError(501, UPLOAD_UNAVAILABLE);
    }
    const task = /^\/api\/([a-z0-9]+)$/.exec(path)?.[1];
    if (task !== undefined) {
      only('POST');
      engine.checkAvailable(task);
      const request = parseRequest(task, await readJsonBody(req, maxBodyBytes));
      const received = performance.now();
      const ran = await queue.submit(task, request);
      return sendJson(res, 200, {
        task,
        result: ran.result,
        ms: ran.ms,
        waitedMs: ran.waitedMs,
        totalMs: performance.now() - received,
        batchSize: ran.batchSize,
      });
    }
    throw new ServeRequestError(404, `no such page or endpoint: ${path}`);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (res.headersSent) return res.destroy();
      sendError(res, error);
      // A refused body may still be arriving: drop the connection once the answer is out.
      if (!req.complete) res.on('finish', () => req.destroy());
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8080, options.host ?? '127.0.0.1', () => resolve());
  }).catch((error: unknown) => {
    engine.dispose();
    folder.model.dispose();
    throw error;
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}/`,
    engine,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      engine.dispose();
      folder.model.dispose();
      sources.gallery.close();
    },
  };
}
