/** Command-line values shared by the benches (parsed with node:util parseArgs, checked here). */

/** The integer given for --name (dflt when absent); throws, naming the option, unless it is an integer >= min. */
export function intArg(name: string, v: string | undefined, dflt: number, min = 1): number {
  const n = v === undefined ? dflt : Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} expects an integer >= ${min}, got '${v}'`);
  return n;
}

/** The --model value: AESc (default) or AE. */
export function modelArg(v: string | undefined): 'AESc' | 'AE' {
  const model = v ?? 'AESc';
  if (model !== 'AESc' && model !== 'AE') throw new Error(`--model expects AESc or AE, got '${model}'`);
  return model;
}
