// A loopback HTTP server standing in for dl.fbaipublicfiles.com: serves byte arrays by path
// with Range support, and on request misbehaves the way real servers do (cuts a body, stalls,
// announces a size it does not send). It records every request. Also a tiny ustar writer for
// archives, hostile ones included (node-tar refuses to write those).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { gzipSync } from 'node:zlib';

export type Behaviour =
  /** Sends half the body under the full Content-Length, then closes the connection (the first time only). */
  | 'cut-once'
  /** Sends headers and a few bytes, then nothing. */
  | 'stall'
  /** Announces one byte more than it has. */
  | 'wrong-length'
  /** Announces a petabyte (2^50 bytes). */
  | 'huge-length';

export interface Served {
  body: Uint8Array;
  behaviour?: Behaviour;
}

export interface TestServer {
  /** http://127.0.0.1:<port>/ */
  base: string;
  files: Map<string, Served>;
  /** Every request: method, path and Range header. */
  requests: { method: string; path: string; range: string | undefined }[];
  close: () => Promise<void>;
}

export async function startServer(files: Map<string, Served> = new Map()): Promise<TestServer> {
  const requests: TestServer['requests'] = [];
  const sockets = new Set<Socket>();
  const cut = new Set<string>();
  const handle = (request: IncomingMessage, response: ServerResponse): void => {
    const path = decodeURIComponent(new URL(request.url ?? '/', 'http://x').pathname).replace(/^\//, '');
    requests.push({ method: request.method ?? 'GET', path, range: request.headers.range });
    const served = files.get(path);
    if (!served) {
      response.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
      return;
    }
    const { body, behaviour } = served;
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(request.headers.range ?? '');
    if (range) {
      start = Number(range[1]);
      if (start >= body.length) {
        response.writeHead(416, { 'Content-Range': `bytes */${body.length}` }).end();
        return;
      }
    }
    const headers: Record<string, string> = {
      'Content-Type': 'application/octet-stream',
      'Content-Length':
        behaviour === 'huge-length'
          ? String(2 ** 50)
          : String(body.length - start + (behaviour === 'wrong-length' ? 1 : 0)),
      'Accept-Ranges': 'bytes',
    };
    if (range) headers['Content-Range'] = `bytes ${start}-${body.length - 1}/${body.length}`;
    response.writeHead(range ? 206 : 200, headers);
    if (request.method === 'HEAD') {
      response.end();
      return;
    }
    const rest = body.subarray(start);
    if (behaviour === 'cut-once' && !cut.has(path)) {
      cut.add(path);
      response.write(rest.subarray(0, Math.floor(rest.length / 2)), () =>
        setTimeout(() => response.socket?.destroy(), 50),
      );
    } else if (behaviour === 'stall') {
      response.write(rest.subarray(0, 16)); // and never more
    } else if (behaviour === 'wrong-length' || behaviour === 'huge-length') {
      response.write(rest, () => setTimeout(() => response.socket?.destroy(), 50));
    } else {
      response.end(rest);
    }
  };
  const server: Server = createServer(handle);
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}/`,
    files,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface TarMember {
  path: string;
  /** File content (default: a folder when path ends with '/'). */
  content?: string | Uint8Array;
  /** A symbolic link ('2') or hard link ('1') to this target. */
  link?: { type: '1' | '2'; target: string };
  /** A raw type flag (e.g. '3', a character device). */
  type?: string;
}

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

/** A gzipped ustar archive of `members`, written as given (no path checks). */
export function tarGz(members: TarMember[]): Buffer {
  const blocks: Buffer[] = [];
  for (const member of members) {
    const content = member.content === undefined ? Buffer.alloc(0) : Buffer.from(member.content as string | Uint8Array);
    const type = member.type ?? member.link?.type ?? (member.path.endsWith('/') ? '5' : '0');
    const header = Buffer.alloc(512);
    header.write(member.path, 0, 100, 'utf8');
    header.write(octal(type === '5' ? 0o755 : 0o644, 8), 100);
    header.write(octal(0, 8), 108);
    header.write(octal(0, 8), 116);
    header.write(octal(type === '0' ? content.length : 0, 12), 124);
    header.write(octal(0, 12), 136);
    header.write('        ', 148);
    header.write(type, 156);
    if (member.link) header.write(member.link.target, 157, 100, 'utf8');
    header.write('ustar\u000000', 257, 'latin1');
    let sum = 0;
    for (const byte of header) sum += byte;
    header.write(octal(sum, 7) + ' ', 148, 'latin1');
    blocks.push(header);
    if (type === '0') {
      blocks.push(content, Buffer.alloc((512 - (content.length % 512)) % 512));
    }
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}
