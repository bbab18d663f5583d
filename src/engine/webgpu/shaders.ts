/**
 * WGSL sources. Each kernel is one plain .wgsl file in the top-level shaders/ folder. loadShaders() reads them
 * all once when the backend is created, from the first of: a loader of your own (setShaderLoader); the folder
 * URL given to setShaderBaseUrl() (fetched); the sources built into the browser bundle (host.shaders); in Node,
 * the shaders/ folder on disk (found by walking up from this module, so it works from src/ and from dist/); else
 * fetched from ../../../shaders/ relative to this module. No Node module is imported at the top level, so this
 * file also loads in a browser.
 */
import { host } from '../host.js';
export const SHADER_NAMES = [
  'adam', 'batchnorm_backward', 'batchnorm_forward', 'batchnorm_grad_merge', 'batchnorm_grad_sums', 'batchnorm_stats',
  'batchnorm_stats_merge', 'binary', 'conv2d', 'conv2d_grad_input', 'conv2d_grad_weight', 'copy', 'fill', 'matmul',
  'mse_loss', 'reduce_sum', 'split_k_reduce', 'unary', 'upsample_nearest', 'upsample_nearest_grad', 'value_stats',
] as const;

const cache = new Map<string, string>();
let loader: ((name: string) => string | Promise<string>) | null = null;
// Resolved when first needed, not at load: a bundle may have no usable import.meta.url until then.
let baseUrl: string | URL | null = null;

/** True once loadShaders() has read every kernel: the WebGPU backend compiles its pipelines from them as it goes. */
let loaded = false;

/** Throws once the shaders are loaded: a new source would leave the backend's later pipelines without theirs. */
function beforeLoad(what: string): void {
  if (loaded) throw new Error(`${what}: the WebGPU backend has already loaded its shaders; call it before the first useBackend('webgpu') (or webgpuBackend())`);
}

/** Where the shaders come from: a function from a kernel's name to its WGSL text. Call before the backend is made. */
export function setShaderLoader(fn: (name: string) => string | Promise<string>): void {
  beforeLoad('setShaderLoader');
  if (typeof fn !== 'function') throw new Error(`setShaderLoader: expected a function from a shader's name to its WGSL text`);
  loader = fn;
  cache.clear();
}

/** Where the shaders come from: the URL of a folder holding <name>.wgsl. Call before the backend is made. */
export function setShaderBaseUrl(url: string | URL): void {
  beforeLoad('setShaderBaseUrl');
  baseUrl = url;
  cache.clear();
}

async function nodeShaderDir(): Promise<string> {
  const fs = await import('node:fs');
  const path = await import('node:path');
  const { fileURLToPath } = await import('node:url');
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, 'shaders');
    if (fs.existsSync(path.join(candidate, 'fill.wgsl'))) return candidate;
    dir = path.dirname(dir);
  }
  throw new Error(`webgpu: cannot find the shaders/ folder above ${fileURLToPath(import.meta.url)}`);
}

/** Reads every kernel's source once (call before the first dispatch; createWebGPUBackend does). */
export async function loadShaders(): Promise<void> {
  const missing = SHADER_NAMES.filter((n) => !cache.has(n));
  if (missing.length === 0) {
    loaded = true;
    return;
  }
  if (loader) {
    for (const n of missing) cache.set(n, await loader(n));
  } else if (!baseUrl && host.shaders) {
    for (const n of missing) {
      const src = host.shaders[n];
      if (src === undefined) throw new Error(`webgpu: shader '${n}' is not built into this bundle`);
      cache.set(n, src);
    }
  } else if (!baseUrl && typeof process !== 'undefined' && process.versions?.node) {
    const fs = await import('node:fs');
    const path = await import('node:path');
    const dir = await nodeShaderDir();
    for (const n of missing) cache.set(n, fs.readFileSync(path.join(dir, `${n}.wgsl`), 'utf8'));
  } else {
    await Promise.all(missing.map(async (n) => {
      const base = baseUrl ?? new URL(/* @vite-ignore */ '../../../shaders/', import.meta.url);
      const res = await fetch(new URL(`${n}.wgsl`, base));
      if (!res.ok) throw new Error(`webgpu: cannot fetch shader ${n}.wgsl from ${String(base)} (${res.status})`);
      cache.set(n, await res.text());
    }));
  }
  loaded = true;
}

/** The text of shaders/<name>.wgsl (loaded by loadShaders). */
export function shaderSource(name: string): string {
  const src = cache.get(name);
  if (src === undefined) throw new Error(`webgpu: shader '${name}' is not loaded (call loadShaders() first; known: ${SHADER_NAMES.join(', ')})`);
  return src;
}
