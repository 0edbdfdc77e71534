// Data-parallel training over libtorch's c10d (Gloo over TCP): the process group, the
// DataParallel helper, per-rank sampling and the launch environment. docs/DISTRIBUTED.md
// says how to run it and how the trainers use it.
export { ProcessGroup, type ProcessGroupOptions } from './process-group.js';
export {
  DataParallel,
  initDistributed,
  caught,
  DEFAULT_BUCKET_BYTES,
  DEFAULT_TIMEOUT_MS,
  type DataParallelOptions,
  type InitDistributedOptions,
} from './data-parallel.js';
export { readLaunchEnvironment, launchVariables, isLoopback, type LaunchEnvironment } from './environment.js';
