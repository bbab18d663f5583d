/**
 * The NaN/Inf guard: while on, the dispatch point checks every output of every op (forward and
 * backward) and throws NonFiniteError at the first one that holds a NaN or an infinity.
 */
import { host } from '../host.js';
import { refusePromise } from '../mode.js';

/**
 * SKIPGRAD_NAN_GUARD: 1 or true turns the guard on, 0, false or nothing leaves it off. Anything else is an error,
 * thrown by the first op (not while this module loads, where a command line would show a stack trace).
 */
let envError: Error | null = null;
let enabled = guardFromEnv(host.env('SKIPGRAD_NAN_GUARD'));

function guardFromEnv(v: string | undefined): boolean {
  const s = (v ?? '').trim().toLowerCase();
  if (s === '1' || s === 'true') return true;
  if (s === '' || s === '0' || s === 'false') return false;
  envError = new Error(`SKIPGRAD_NAN_GUARD='${v}' is not 1, true, 0 or false`);
  return false;
}

export class NonFiniteError extends Error {
  constructor(message: string, readonly op: string, readonly phase: string) {
    super(message);
    this.name = 'NonFiniteError';
  }
}

export function setNanGuard(on: boolean): void {
  envError = null; // an explicit setting replaces a bad SKIPGRAD_NAN_GUARD
  enabled = on;
}

export function nanGuardEnabled(): boolean {
  if (envError) throw envError;
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
