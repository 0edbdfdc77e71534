// The environment variables torch.distributed.launch (--use_env) gives each worker, read
// and written in one place: `vilbert launch` sets them, initDistributed() reads them.

export interface LaunchEnvironment {
  /** Global rank, 0..worldSize-1. */
  rank: number;
  /** Rank among the processes of this machine (selects the GPU on a CUDA build). */
  localRank: number;
  worldSize: number;
  masterAddr: string;
  masterPort: number;
}

/** The variables of one worker, as strings for a child process's environment. */
export function launchVariables(worker: LaunchEnvironment): Record<string, string> {
  return {
    RANK: String(worker.rank),
    LOCAL_RANK: String(worker.localRank),
    WORLD_SIZE: String(worker.worldSize),
    MASTER_ADDR: worker.masterAddr,
    MASTER_PORT: String(worker.masterPort),
  };
}

function integerVariable(env: NodeJS.ProcessEnv, name: string, low: number, high: number): number {
  const text = env[name];
  const value = Number(text);
  if (text === undefined || text.trim() === '' || !Number.isInteger(value) || value < low || value > high) {
    throw new Error(`distributed training: ${name} must be an integer in ${low}..${high}, got '${text ?? ''}'`);
  }
  return value;
}

/**
 * The worker's place in a distributed run, or null when WORLD_SIZE is unset (a plain,
 * single-process run). RANK, MASTER_ADDR and MASTER_PORT are then required;
 * LOCAL_RANK defaults to RANK (one machine).
 */
export function readLaunchEnvironment(env: NodeJS.ProcessEnv = process.env): LaunchEnvironment | null {
  if (env.WORLD_SIZE === undefined) return null;
  const worldSize = integerVariable(env, 'WORLD_SIZE', 1, 1 << 20);
  const rank = integerVariable(env, 'RANK', 0, worldSize - 1);
  const localRank = env.LOCAL_RANK === undefined ? rank : integerVariable(env, 'LOCAL_RANK', 0, worldSize - 1);
  const masterAddr = env.MASTER_ADDR ?? '';
  if (masterAddr === '')
    throw new Error("distributed training: MASTER_ADDR must name rank 0's machine (WORLD_SIZE is set)");
  const masterPort = integerVariable(env, 'MASTER_PORT', 1, 65535);
  return { rank, localRank, worldSize, masterAddr, masterPort };
}

/** True for addresses of this machine's loopback interface, where every rank runs here. */
export function isLoopback(address: string): boolean {
  return address === 'localhost' || address === '::1' || /^127\.\d+\.\d+\.\d+$/.test(address);
}
