/**
 * The browser build of the engine: `npm run build:browser` -> dist/browser/skipgrad.js, one readable ES module
 * (not minified) with the whole public API of src/engine/index.ts. src/engine/host.ts (Node: environment variables,
 * worker threads) is replaced by src/engine/host.browser.ts; the Node-only branches that remain (Dawn from the
 * `webgpu` package, shaders read from disk) are behind runtime checks and only import lazily, so their modules are
 * left out. The WGSL kernels are built in (host.browser.ts), so the bundle is one self-contained file.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig, type UserConfig } from 'vite';

/** Every import of the engine's host.js resolves to host.browser.ts. */
const browserHostAlias = {
  find: /^(?:\.\.?\/)+host\.js$/,
  replacement: fileURLToPath(new URL('./src/engine/host.browser.ts', import.meta.url)),
};

/**
 * A browser build of `entry` (a path relative to the repository root) into one readable ES module, `outDir`/`file`:
 * the engine's browser host, no Node module, dynamic imports inlined. Also used by bench/browser/vite.config.ts.
 */
export function browserModule(entry: string, outDir: string, file: string): UserConfig {
  const fromRoot = (p: string): string => fileURLToPath(new URL(`./${p}`, import.meta.url));
  return {
    resolve: { alias: [browserHostAlias] },
    build: {
      outDir: fromRoot(outDir),
      emptyOutDir: true,
      target: 'es2022',
      minify: false,
      sourcemap: true,
      lib: { entry: fromRoot(entry), formats: ['es'], fileName: () => file },
      rollupOptions: { external: [/^node:/, 'webgpu'], output: { inlineDynamicImports: true } },
    },
  };
}

export default defineConfig(browserModule('src/engine/index.ts', 'dist/browser', 'skipgrad.js'));
