#!/usr/bin/env node
// Builds native/ with node-gyp against the local Node headers and a libtorch:
// $LIBTORCH when set (a libtorch distribution or a pip torch's torch/ folder),
// otherwise Debian's libtorch-dev. Never downloads anything.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const HOW_TO_GET = `
vilbert-ts needs libtorch (the C++ library of PyTorch) to build its native addon.
  On Debian or Ubuntu:   sudo apt-get install libtorch-dev
  Anywhere else:         LIBTORCH=/path/to/libtorch npm install
                         (an unpacked libtorch distribution, or the torch/ folder of a pip
                          install of torch: it must contain include/ and lib/)`;

function fail(message) {
  console.error(`\nvilbert-ts: ${message}\n${HOW_TO_GET}\n`);
  process.exit(1);
}

function multiarchLibDir() {
  const triplet = spawnSync('gcc', ['-print-multiarch'], { encoding: 'utf8' }).stdout?.trim();
  const candidates = [
    triplet && `/usr/lib/${triplet}`,
    '/usr/lib/x86_64-linux-gnu',
    '/usr/lib/aarch64-linux-gnu',
    '/usr/lib',
  ];
  return candidates.find((dir) => dir && existsSync(join(dir, 'libtorch.so')));
}

// A libtorch built with the pre-C++11 ABI says so in its CMake config; the addon
// must be compiled the same way.
function abiDefines(cmakeConfig) {
  if (!cmakeConfig || !existsSync(cmakeConfig)) return [];
  const match = /_GLIBCXX_USE_CXX11_ABI=([01])/.exec(readFileSync(cmakeConfig, 'utf8'));
  return match ? [`_GLIBCXX_USE_CXX11_ABI=${match[1]}`] : [];
}

function locateLibtorch() {
  const fromEnv = process.env.LIBTORCH;
  if (fromEnv) {
    const base = resolve(fromEnv);
    const include = join(base, 'include');
    const lib = join(base, 'lib');
    if (!existsSync(join(include, 'ATen', 'ATen.h'))) fail(`LIBTORCH=${fromEnv} has no include/ATen/ATen.h.`);
    if (!existsSync(join(lib, 'libtorch.so')) && !existsSync(join(lib, 'libtorch.dylib')))
      fail(`LIBTORCH=${fromEnv} has no lib/libtorch.so.`);
    return {
      include: [include, join(include, 'torch', 'csrc', 'api', 'include')],
      lib,
      defines: abiDefines(join(base, 'share', 'cmake', 'Torch', 'TorchConfig.cmake')),
      source: `LIBTORCH=${base}`,
    };
  }
  const lib = multiarchLibDir();
  if (!existsSync('/usr/include/ATen/ATen.h') || !lib)
    fail('no libtorch was found (looked for Debian libtorch-dev in /usr/include and /usr/lib).');
  return {
    include: ['/usr/include', '/usr/include/torch/csrc/api/include'],
    lib,
    defines: abiDefines(join(lib, 'cmake', 'Torch', 'TorchConfig.cmake')),
    source: `Debian libtorch-dev (${lib})`,
  };
}

function nodeGyp() {
  const bundled = process.env.npm_config_node_gyp;
  if (bundled && existsSync(bundled)) return [process.execPath, bundled];
  const npmDir = dirname(dirname(execFileSync('npm', ['root', '-g'], { encoding: 'utf8' }).trim()));
  const candidates = [
    join(npmDir, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    join(
      dirname(process.execPath),
      '..',
      'lib',
      'node_modules',
      'npm',
      'node_modules',
      'node-gyp',
      'bin',
      'node-gyp.js',
    ),
  ];
  const found = candidates.find((file) => existsSync(file));
  if (!found) fail('node-gyp was not found (it ships with npm).');
  return [process.execPath, found];
}

function nodeDir() {
  const configured = process.env.npm_config_nodedir;
  if (configured && existsSync(join(configured, 'include', 'node', 'node_api.h'))) return configured;
  const fromExec = resolve(dirname(process.execPath), '..');
  if (existsSync(join(fromExec, 'include', 'node', 'node_api.h'))) return fromExec;
  console.error(
    'vilbert-ts: the Node.js headers (include/node/node_api.h) were not found next to node or in npm_config_nodedir.',
  );
  process.exit(1);
}

const torch = locateLibtorch();
const [node, gyp] = nodeGyp();
const args = [
  gyp,
  'rebuild',
  `--directory=${join(root, 'native')}`,
  `--nodedir=${nodeDir()}`,
  `--jobs=max`,
  '--',
  `-Dlibtorch_include=${torch.include.join(' ')}`,
  `-Dlibtorch_lib=${torch.lib}`,
  `-Dlibtorch_defines=${torch.defines.join(' ')}`,
];
console.error(`vilbert-ts: building the native addon against ${torch.source}`);
const result = spawnSync(node, args, { stdio: 'inherit' });
if (result.status !== 0) process.exit(result.status ?? 1);
