/**
 * What the engine needs from the environment it runs in, in one place (but for the WebGPU backend's Node-only
 * branches: webgpu/device.ts loads Dawn and reads SKIPGRAD_DAWN_OPTIONS, webgpu/shaders.ts reads the shaders from
 * disk, both behind a process.versions.node check). This file is the Node version;
 * host.browser.ts is the browser's, swapped in by an alias of the browser build (vite.browser.config.ts); the
 * package.json exports' "browser" condition points browser bundlers at that build (dist/browser/skipgrad.js).
 * No other module reachable from src/engine/index.ts imports a Node module at its top level, so the engine also
 * loads in a browser.
 */
import os from 'node:os';
import { MessageChannel, Worker, receiveMessageOnPort, workerData } from 'node:worker_threads';

export interface Host {
  /** 'Node v20.20.2', or the browser's user agent. */
  runtime: string;
  /** The CPU's model name ('' where it cannot be known) and its logical cores. */
  cpuModel: string;
  cpus: number;
  /** Threads the CPU kernels may use by default (SKIPGRAD_THREADS overrides). */
  parallelism: number;
  /** An environment variable (undefined in a browser). */
  env(name: string): string | undefined;
  /** Worker threads for the CPU kernels; null where there are none (the kernels then run on the calling thread). */
  threads: {
    Worker: typeof Worker;
    MessageChannel: typeof MessageChannel;
    receiveMessageOnPort: typeof receiveMessageOnPort;
    workerData: unknown;
  } | null;
  /** The WGSL kernels built in, by name (the browser bundle); null: read from the shaders/ folder. */
  shaders: Readonly<Record<string, string>> | null;
}

const cpus = os.cpus();

export const host: Host = {
  runtime: `Node ${process.version}`,
  cpuModel: cpus[0]?.model ?? '',
  cpus: cpus.length,
  parallelism: os.availableParallelism(),
  env: (name) => process.env[name],
  threads: { Worker, MessageChannel, receiveMessageOnPort, workerData },
  shaders: null,
};
