#!/usr/bin/env node
/** The skipgrad command line. */
import { parseArgs } from 'node:util';
import { formatTable } from './engine/audit/trace.js';
import { gradcheck } from './engine/audit/gradcheck.js';
import { caseInputs, OP_CASES } from './engine/audit/op-cases.js';
import { Rng } from './engine/random.js';
import { memory } from './engine/tensor.js';

const HELP = `skipgrad: a small, auditable deep-learning engine

Usage: skipgrad <command> [options]

Commands:
  gradcheck   Check every op's gradient against central finite differences (float64, CPU)
              and print a table; exits 1 if any op fails.
                --op NAME       only cases whose name contains NAME
                --seed N        seed of the random inputs (default 0)
                --tolerance T   max relative error to pass (default 1e-5)
                --json          print the results as JSON instead of a table
  help        Show this help.
`;

function fail(message: string): never {
  process.stderr.write(`skipgrad: ${message}\nRun 'skipgrad help' for usage.\n`);
  process.exit(2);
}

function parseNumber(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n)) fail(`--${name} expects a number, got '${v}'`);
  return n;
}

function runGradcheck(argv: string[]): number {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { op: { type: 'string' }, seed: { type: 'string' }, tolerance: { type: 'string' }, json: { type: 'boolean' } },
      strict: true,
    }));
  } catch (e) {
    fail(`gradcheck: ${(e as Error).message}`);
  }
  const seed = parseNumber('seed', values.seed, 0);
  const tolerance = parseNumber('tolerance', values.tolerance, 1e-5);
  const cases = OP_CASES.filter((c) => !values.op || c.name.includes(values.op));
  if (cases.length === 0) fail(`gradcheck: no op matches '${values.op}' (ops: ${OP_CASES.map((c) => c.name).join(', ')})`);
  const rng = new Rng(seed);
  const results = cases.map((c) => {
    const inputs = caseInputs(c, rng);
    const t0 = performance.now();
    let r;
    try {
      r = gradcheck(c.fn, inputs, { tolerance, ...(c.check ? { check: c.check } : {}) });
    } catch (e) {
      r = { maxRelError: Infinity, maxAbsError: Infinity, checked: 0, ok: false, worst: `threw: ${(e as Error).message}` };
    }
    for (const t of inputs) t.dispose();
    return { op: c.name, shapes: c.inputs.map((s) => `[${s.shape.join(',')}]`).join(' '), ms: performance.now() - t0, ...r };
  });
  const failed = results.filter((r) => !r.ok);
  if (values.json) {
    process.stdout.write(JSON.stringify({ seed, tolerance, results, failed: failed.length }, null, 2) + '\n');
  } else {
    const rows = results.map((r) => [r.op, r.shapes, r.maxRelError.toExponential(2), r.maxAbsError.toExponential(2), String(r.checked), r.ok ? 'pass' : 'FAIL']);
    process.stdout.write(formatTable(['op', 'input shapes', 'max rel err', 'max abs err', 'elements', 'result'], rows) + '\n\n');
    for (const r of failed) process.stdout.write(`FAIL ${r.op}: worst ${r.worst}\n`);
    const mem = memory();
    process.stdout.write(`${results.length - failed.length}/${results.length} ops pass (float64, central differences, tolerance ${tolerance}, seed ${seed}); live tensors after: ${mem.tensors}\n`);
  }
  return failed.length > 0 ? 1 : 0;
}

export function main(argv: string[]): number {
  const [command, ...rest] = argv;
  switch (command) {
    case 'gradcheck':
      return runGradcheck(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(HELP);
      return 0;
    default:
      fail(`unknown command '${command}'`);
  }
}

process.exitCode = main(process.argv.slice(2));
