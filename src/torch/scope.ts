// Deterministic release of native tensors. Every tensor created while a scope
// is open belongs to it; when the scope's function returns, the tensors it
// created are disposed, except those in its return value (which move to the
// enclosing scope) and those marked with keep().

export interface Owned {
  dispose(): void;
  readonly isDisposed: boolean;
  readonly isKept: boolean;
}

const OWNED = Symbol('vilbert.owned');
const scopes: Set<Owned>[] = [];

export function markOwned(value: Owned): void {
  (value as unknown as Record<symbol, boolean>)[OWNED] = true;
  scopes[scopes.length - 1]?.add(value);
}

function isOwned(value: unknown): value is Owned {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[OWNED] === true;
}

/** Removes a tensor from every open scope (it is then the caller's to dispose). */
export function untrack(value: Owned): void {
  for (const scope of scopes) scope.delete(value);
}

function collectReturned(value: unknown, into: Set<Owned>, seen: Set<unknown>): void {
  if (typeof value !== 'object' || value === null || seen.has(value)) return;
  seen.add(value);
  if (isOwned(value)) {
    into.add(value);
    return;
  }
  if (Array.isArray(value)) {
    for (const item of value) collectReturned(item, into, seen);
  } else if (value instanceof Map) {
    for (const item of value.values()) collectReturned(item, into, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const item of Object.values(value)) collectReturned(item, into, seen);
  }
}

/**
 * Runs fn and disposes every tensor it created that is neither returned (found
 * in arrays, Maps and plain objects of the result) nor kept. Synchronous only:
 * an async function would let other code's tensors into the scope.
 */
export function scope<T>(fn: () => T): T {
  const current = new Set<Owned>();
  scopes.push(current);
  let result: T;
  try {
    result = fn();
    if (result instanceof Promise) throw new TypeError('torch.scope() takes a synchronous function');
  } catch (error) {
    scopes.pop();
    for (const owned of current) if (!owned.isKept) owned.dispose();
    throw error;
  }
  scopes.pop();
  const returned = new Set<Owned>();
  collectReturned(result, returned, new Set());
  const parent = scopes[scopes.length - 1];
  for (const owned of current) {
    if (returned.has(owned)) parent?.add(owned);
    else if (!owned.isKept) owned.dispose();
  }
  return result;
}

export function scopeDepth(): number {
  return scopes.length;
}
