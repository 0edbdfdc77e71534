// Shared by the distributed tests: a free loopback port, and running the test CLI.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

export const cli = fileURLToPath(new URL('./cli.js', import.meta.url));

/** A port nothing listens on right now (bound to 0, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  milliseconds: number;
}

/** The environment of a plain process: no launch variables inherited from the test runner. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of [
    'RANK',
    'LOCAL_RANK',
    'WORLD_SIZE',
    'MASTER_ADDR',
    'MASTER_PORT',
    'OMP_NUM_THREADS',
    'GLOO_SOCKET_IFNAME',
  ])
    delete env[name];
  return { ...env, ...extra };
}

/** Runs the test CLI; a run still going after limitMs is killed (the test then fails on its result). */
export function runCli(args: string[], env: NodeJS.ProcessEnv = cleanEnv(), limitMs = 60_000): Promise<Finished> {
  const started = performance.now();
  const child = spawn(process.execPath, [cli, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
  return new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const milliseconds = performance.now() - started;
      // The rest of stderr arrives by 'close', unless a leftover worker still holds the pipe.
      const finish = () => resolve({ code, signal, stderr, milliseconds });
      const grace = setTimeout(finish, 2000);
      child.on('close', () => {
        clearTimeout(grace);
        finish();
      });
    });
  });
}
