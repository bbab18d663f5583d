// The benches' command lines (bench/args.ts): an option a bench does not know is an error naming it, never ignored,
// and a bad value is an error naming the option, both before anything is measured or written.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { benchUsage, parseBenchArgs, UsageError, type BenchOptions } from '../bench/args.js';
import { MODEL_OPTIONS, modelOptionsFromArgs } from '../bench/model.js';
import { OPS_OPTIONS, opsOptionsFromArgs } from '../bench/ops.js';
import { PROFILE_OPTIONS, profileOptionsFromArgs } from '../bench/profile.js';
import { TILES_OPTIONS, tilesOptionsFromArgs } from '../bench/tiles.js';
import { PRECISION_OPTIONS, precisionOptionsFromArgs } from '../bench/precision.js';

const run = promisify(execFile);
const OPTIONS: BenchOptions = { size: { type: 'string', help: 'side' }, quick: { type: 'boolean', help: 'short' } };

describe('parseBenchArgs', () => {
  it('reads string and boolean options', () => {
    const a = parseBenchArgs(['--size', '64', '--quick'], OPTIONS);
    expect(a.str('size')).toBe('64');
    expect(a.flag('quick')).toBe(true);
    expect(a.str('quick')).toBeUndefined();
    expect(parseBenchArgs([], OPTIONS).flag('quick')).toBe(false);
  });

  it('rejects any option it does not know, naming it and the options it expects', () => {
    fc.assert(fc.property(fc.stringMatching(/^[a-z][a-z-]{0,12}$/), (name) => {
      fc.pre(!(name in OPTIONS));
      expect(() => parseBenchArgs([`--${name}`, '1'], OPTIONS)).toThrow(new UsageError(`unknown option '--${name}'; expected --quick, --size`));
    }));
  });

  it('accepts the options of the other parts (also) without reading them as its own', () => {
    const also: BenchOptions = { models: { type: 'string', help: '' } };
    expect(parseBenchArgs(['--models', 'AE', '--size', '8'], OPTIONS, also).str('size')).toBe('8');
    expect(() => parseBenchArgs(['--models', 'AE'], OPTIONS)).toThrow(/unknown option '--models'/);
  });

  it('rejects a missing value, a value given to a flag and a positional argument', () => {
    expect(() => parseBenchArgs(['--size'], OPTIONS)).toThrow(/^option '--size <value>' argument missing; expected --quick, --size$/);
    expect(() => parseBenchArgs(['--quick=yes'], OPTIONS)).toThrow(/option '--quick' does not take an argument/);
    expect(() => parseBenchArgs(['64'], OPTIONS)).toThrow(/unexpected argument '64'/);
    expect(() => parseBenchArgs(['x'], {})).toThrow(/expected no arguments$/);
  });

  it('--help lists every option with its help line', () => {
    const text = benchUsage('dist/bench/x.js', 'does x.', OPTIONS);
    expect(text).toMatch(/^usage: node dist\/bench\/x\.js \[options\]\ndoes x\.\n/);
    expect(text).toMatch(/--size VALUE +side\n/);
    expect(text).toMatch(/--quick +short\n/);
    expect(text).toMatch(/--help +this text\n$/);
  });
});

describe("each bench's options", () => {
  const parsers: Array<[string, BenchOptions, (argv: string[]) => unknown]> = [
    ['ops', OPS_OPTIONS, opsOptionsFromArgs],
    ['model', MODEL_OPTIONS, (argv) => modelOptionsFromArgs(argv)],
    ['profile', PROFILE_OPTIONS, profileOptionsFromArgs],
    ['tiles', TILES_OPTIONS, tilesOptionsFromArgs],
    ['precision', PRECISION_OPTIONS, precisionOptionsFromArgs],
  ];
  for (const [name, options, parse] of parsers) {
    it(`${name}: an unknown option or a bad value is a UsageError naming it`, () => {
      expect(() => parse(['--bogus'])).toThrow(UsageError);
      expect(() => parse(['--bogus'])).toThrow(`unknown option '--bogus'; expected ${Object.keys(options).sort().map((n) => `--${n}`).join(', ')}`);
      const intOption = 'size' in options ? 'size' : 'reps';
      expect(() => parse([`--${intOption}`, 'big'])).toThrow(new RegExp(`^--${intOption} expects an integer >= \\d+, got 'big'$`));
    });
  }

  it('the singular/plural slip is caught, not run as the default', () => {
    expect(() => opsOptionsFromArgs(['--backend', 'webgpu'])).toThrow(/unknown option '--backend'/);
    expect(() => modelOptionsFromArgs(['--model', 'AE'])).toThrow(/unknown option '--model'/);
    expect(() => profileOptionsFromArgs(['--backends', 'cpu'])).toThrow(/unknown option '--backends'/);
  });

  it('--size is checked against the esann network, before it is built', () => {
    for (const parse of [(argv: string[]) => modelOptionsFromArgs(argv), profileOptionsFromArgs, tilesOptionsFromArgs, precisionOptionsFromArgs]) {
      expect(() => parse(['--size', '60'])).toThrow(/^--size 60 does not fit the esann network: input size 60 is too small .*; the least size that fits is 61$/);
      expect(parse(['--size', '61'])).toMatchObject({ size: 61 });
      // Batch norm in training needs two values per channel: batch 1 at a 1x1 bottleneck (64x64) cannot train.
      expect(() => parse(['--size', '64', '--batch', '1'])).toThrow("--batch 1: at --size 64 the esann network's deepest layer is 1x1, and batch norm in training needs more than one value per channel; use --batch 2 or more");
      expect(parse(['--size', '77', '--batch', '1'])).toMatchObject({ size: 77, batch: 1 }); // 77 -> 37 -> 17 -> 7 -> 2: a 2x2 bottleneck
    }
  });

  it('list and seconds values are checked', () => {
    expect(() => opsOptionsFromArgs(['--backends', 'cpu,gpu'])).toThrow("--backends: unknown value 'gpu' (expected cpu and/or webgpu, comma-separated)");
    expect(() => modelOptionsFromArgs(['--models', 'AESc,VAE'])).toThrow("--models: unknown value 'VAE' (expected AESc and/or AE, comma-separated)");
    expect(() => opsOptionsFromArgs(['--cap', '0'])).toThrow("--cap expects seconds > 0, got '0'");
    expect(() => modelOptionsFromArgs(['--model-cap', 'soon'])).toThrow("--cap expects seconds > 0, got 'soon'");
    expect(opsOptionsFromArgs(['--backends', 'webgpu', '--cap', '2.5'])).toMatchObject({ backends: ['webgpu'], capSeconds: 2.5 });
    expect(() => precisionOptionsFromArgs(['--configs', 'gpu,gpu'])).toThrow("--configs: 'gpu' is listed twice");
    expect(() => precisionOptionsFromArgs(['--configs', 'none,gpu'])).toThrow("--configs: none (the CPU alone) cannot be listed with others, got 'none,gpu'");
    expect(precisionOptionsFromArgs(['--configs', 'none'])).toMatchObject({ configs: [] });
    expect(precisionOptionsFromArgs([])).toMatchObject({ configs: ['adapter'], size: 256, batch: 8, dump: null });
  });

  it('npm run bench passes each part the options of the other (model options to the op bench and back)', () => {
    const argv = ['--size', '64', '--no-extras', '--model-reps', '3', '--reps', '4'];
    expect(opsOptionsFromArgs(argv, MODEL_OPTIONS)).toMatchObject({ reps: 4, extras: false });
    expect(modelOptionsFromArgs(argv, { inheritReps: false, also: OPS_OPTIONS })).toMatchObject({ size: 64, reps: 3 });
    expect(() => opsOptionsFromArgs(argv)).toThrow(/unknown option '--size'/);
  });
});

describe('the bench scripts from the command line', () => {
  const results = path.join('bench', 'results');
  const mtimes = (): string => fs.readdirSync(results).map((f) => `${f}:${fs.statSync(path.join(results, f)).mtimeMs}`).join();
  const node = (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    run(process.execPath, ['--import', 'tsx', ...args], { env: { ...process.env, SKIPGRAD_BACKEND: 'cpu' } })
      .then((r) => ({ code: 0, ...r }), (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }));

  it('a bad option stops `npm run bench` with status 2 and a one-line reason, before anything is measured or written', async () => {
    const before = mtimes();
    const r = await node(['bench/bench.ts', '--backend', 'webgpu']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("dist/bench/bench.js: unknown option '--backend'; expected --backends,");
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(r.stdout).toBe('');
    expect(mtimes()).toBe(before);
  }, 60_000);

  it('--help prints the options and exits 0', async () => {
    const r = await node(['bench/ops.ts', '--help']);
    expect(r.code).toBe(0);
    for (const name of Object.keys(OPS_OPTIONS)) expect(r.stdout).toContain(`--${name}`);
    const v = await node(['bench/profile.ts', '--size', '32']);
    expect(v.code).toBe(2);
    expect(v.stderr).toContain("dist/bench/profile.js: --size 32 does not fit the esann network: input size 32 is too small for depth 5 with kernel 5");
  }, 60_000);
});
