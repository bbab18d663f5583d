/**
 * The engine's host in a browser (see host.ts, whose place this file takes in the browser build,
 * vite.browser.config.ts): no environment variables, no worker threads for the CPU kernels (they run on the
 * calling thread; the WebGPU backend is the fast path there), and the WGSL kernels built into the bundle (vite
 * inlines every shaders/*.wgsl file as a string), so the bundle is one self-contained file.
 */
/// <reference types="vite/client" />
import type { Host } from './host.js';

const files = import.meta.glob<string>('../../shaders/*.wgsl', { query: '?raw', import: 'default', eager: true });
const shaders: Record<string, string> = {};
for (const [file, source] of Object.entries(files)) shaders[file.replace(/^.*\//, '').replace(/\.wgsl$/, '')] = source;

const nav = (globalThis as { navigator?: { userAgent?: string; hardwareConcurrency?: number } }).navigator;

export const host: Host = {
  runtime: nav?.userAgent ?? 'browser',
  cpuModel: '',
  cpus: nav?.hardwareConcurrency ?? 1,
  parallelism: 1,
  env: () => undefined,
  threads: null,
  shaders,
};
