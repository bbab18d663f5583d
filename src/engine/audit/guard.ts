/**
 * The NaN/Inf guard: while on, the dispatch point checks every output of every op (forward and
 * backward) and throws NonFiniteError at the first one that holds a NaN or an infinity.
 */
import { host } from '../host.js';
import { refusePromise } from '../mode.js';

let enabled = host.env('SKIPGRAD_NAN_GUARD') === '1';

export class NonFiniteError extends Error {
  constructor(message: string, readonly op: string, readonly phase: string) {
    super(message);
    this.name = 'NonFiniteError';
  }
}

export function setNanGuard(on: boolean): void {
  enabled = on;
}

export function nanGuardEnabled(): boolean {
  return enabled;
}

/** Runs fn with the guard on. fn must be synchronous (for async code, setNanGuard(true) and turn it off after). */
export function withNanGuard<T>(fn: () => T): T {
  const prev = enabled;
  enabled = true;
  let result: T;
  try {
    result = fn();
  } finally {
    enabled = prev;
  }
  return refusePromise('withNanGuard', result);
}
