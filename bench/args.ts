/**
 * The command lines of the benches: node:util parseArgs in strict mode (an option a bench does not know is an error,
 * never silently ignored: `--backend webgpu` for `--backends webgpu` would otherwise run every backend for an hour),
 * --help generated from the same option table, and the checks of the values.
 */
import { parseArgs } from 'node:util';
import { inputSizeProblem, PRESETS, trainingBatchProblem } from '../src/models/autoencoder.js';

/** One command-line option of a bench: its parseArgs type and its line in --help. */
export interface BenchOption { type: 'string' | 'boolean'; help: string }
export type BenchOptions = Record<string, BenchOption>;

/** Bad command-line input. benchMain prints the message alone (no stack trace) and exits with status 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** The parsed values: str('size') is the string given for --size (undefined when absent), flag('quick') a boolean. */
export interface BenchArgs {
  str(name: string): string | undefined;
  flag(name: string): boolean;
}

/**
 * Parses argv against `options`, plus `also` (the options of the other parts of a combined command, bench/bench.ts,
 * accepted here and left to them). Throws a UsageError naming the offending argument and the options expected.
 */
export function parseBenchArgs(argv: string[], options: BenchOptions, also: BenchOptions = {}): BenchArgs {
  const all = { ...also, ...options };
  let values: Record<string, unknown>;
  try {
    values = parseArgs({
      args: argv, strict: true, allowPositionals: false,
      options: Object.fromEntries(Object.entries(all).map(([name, o]) => [name, { type: o.type }])),
    }).values;
  } catch (e) {
    const code = (e as { code?: string }).code ?? '';
    if (!code.startsWith('ERR_PARSE_ARGS')) throw e;
    const what = code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION'
      ? `unknown option '${/'([^']*)'/.exec((e as Error).message)?.[1] ?? '?'}'`
      : (e as Error).message.split('. ')[0].replace(/^./, (c) => c.toLowerCase());
    const names = Object.keys(all).sort().map((n) => `--${n}`);
    throw new UsageError(`${what}; expected ${names.length ? names.join(', ') : 'no arguments'}`);
  }
  return {
    str: (name) => (typeof values[name] === 'string' ? (values[name] as string) : undefined),
    flag: (name) => values[name] === true,
  };
}

/** The --help text: what the command does, then one line per option. */
export function benchUsage(command: string, summary: string, options: BenchOptions): string {
  const lines: Array<[string, string]> = Object.entries(options).map(([name, o]) => [`--${name}${o.type === 'string' ? ' VALUE' : ''}`, o.help]);
  const width = Math.max(12, ...lines.map(([flag]) => flag.length)) + 2;
  lines.push(['--help', 'this text']);
  return `usage: node ${command} [options]\n${summary}\n\n${lines.map(([flag, help]) => `  ${flag.padEnd(width)}${help}`).join('\n')}\n`;
}

/**
 * The entry point of a bench run from the command line: --help (or -h) prints benchUsage and exits 0; a UsageError
 * from main (bad options, found before anything is measured or written) is printed as "command: message" with
 * status 2. Any other error propagates with its stack trace: it is a bug or a failure of the run, not bad input.
 */
export async function benchMain(command: string, summary: string, options: BenchOptions, main: (argv: string[]) => Promise<void>): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(benchUsage(command, summary, options));
    process.exit(0);
  }
  try {
    await main(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`${command}: ${e.message}\n(--help lists the options)\n`);
    process.exit(2);
  }
}

/** The integer given for --name (dflt when absent); throws a UsageError, naming the option, unless it is an integer >= min. */
export function intArg(name: string, v: string | undefined, dflt: number, min = 1): number {
  const n = v === undefined ? dflt : Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} expects an integer >= ${min}, got '${v}'`);
  return n;
}

/** The --size of an esann network (dflt when absent): an integer its encoder can take (inputSizeProblem: 61 at least). */
export function esannSizeArg(v: string | undefined, dflt: number): number {
  const size = intArg('size', v, dflt);
  const why = inputSizeProblem({ ...PRESETS.esann, inputSize: size });
  if (why !== null) throw new UsageError(`--size ${size} does not fit the esann network: ${why}`);
  return size;
}

/** Seconds given for --name (dflt when absent); throws a UsageError unless a number > 0. */
export function secondsArg(name: string, v: string | undefined, dflt: number): number {
  const s = v === undefined ? dflt : Number(v);
  if (!(s > 0) || !Number.isFinite(s)) throw new UsageError(`--${name} expects seconds > 0, got '${v}'`);
  return s;
}

/** The value given for --name (dflt when absent), one of `allowed`. */
export function choiceArg<T extends string>(name: string, v: string | undefined, dflt: T, allowed: readonly T[]): T {
  const value = v ?? dflt;
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`--${name} expects ${allowed.join(' or ')}, got '${value}'`);
  return value as T;
}

/** The options naming the esann training step that bench/profile.ts and bench/tiles.ts trace (esannStepper's). */
export const ESANN_STEP_OPTIONS: BenchOptions = {
  model: { type: 'string', help: 'AESc or AE (default AESc)' },
  size: { type: 'string', help: 'image side (default 256)' },
  batch: { type: 'string', help: 'default 8' },
  channels: { type: 'string', help: "base width (default 16, the paper's)" },
};

/** The values of ESANN_STEP_OPTIONS. */
export function esannStepArgs(a: BenchArgs): { model: 'AESc' | 'AE'; size: number; batch: number; channels: number } {
  const size = esannSizeArg(a.str('size'), 256);
  return {
    model: choiceArg('model', a.str('model'), 'AESc', ['AESc', 'AE'] as const), size,
    batch: esannBatchArg(a.str('batch'), 8, size), channels: intArg('channels', a.str('channels'), 16),
  };
}

/** The batch given for --batch (dflt when absent); a UsageError where the esann network at `size` cannot train on it. */
export function esannBatchArg(v: string | undefined, dflt: number, size: number): number {
  const batch = intArg('batch', v, dflt);
  const why = trainingBatchProblem({ ...PRESETS.esann, inputSize: size }, batch);
  if (why !== null) throw new UsageError(`--batch ${batch}: at --size ${size} the esann network's ${why}; use --batch 2 or more`);
  return batch;
}

/** A comma-separated list given for --name (dflt when absent), each item one of `allowed`. */
export function listArg<T extends string>(name: string, v: string | undefined, dflt: string, allowed: readonly T[]): T[] {
  const items = (v ?? dflt).split(',');
  for (const [i, item] of items.entries()) {
    if (!(allowed as readonly string[]).includes(item)) throw new UsageError(`--${name}: unknown value '${item}' (expected ${allowed.join(' and/or ')}, comma-separated)`);
    if (items.indexOf(item) !== i) throw new UsageError(`--${name}: '${item}' is listed twice`);
  }
  return items as T[];
}
