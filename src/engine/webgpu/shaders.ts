/**
 * WGSL sources. Each kernel is one plain .wgsl file in the top-level shaders/ folder. In Node they are
 * read from disk (found by walking up from this module, so it works from src/ and from dist/); in a
 * browser, call setShaderLoader() with a function that returns a file's text (e.g. bundled strings).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let loader: ((name: string) => string) | null = null;
const cache = new Map<string, string>();

export function setShaderLoader(fn: (name: string) => string): void {
  loader = fn;
  cache.clear();
}

function shaderDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, 'shaders');
    if (fs.existsSync(path.join(candidate, 'fill.wgsl'))) return candidate;
    dir = path.dirname(dir);
  }
  throw new Error(`webgpu: cannot find the shaders/ folder above ${fileURLToPath(import.meta.url)}`);
}

/** The text of shaders/<name>.wgsl. */
export function shaderSource(name: string): string {
  let src = cache.get(name);
  if (src === undefined) {
    src = loader ? loader(name) : fs.readFileSync(path.join(shaderDir(), `${name}.wgsl`), 'utf8');
    cache.set(name, src);
  }
  return src;
}
