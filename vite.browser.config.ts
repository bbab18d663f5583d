/**
 * The browser build of the engine: `npm run build:browser` -> dist/browser/skipgrad.js, one readable ES module
 * (not minified) with the whole public API of src/engine/index.ts. src/engine/host.ts (Node: environment variables,
 * worker threads) is replaced by src/engine/host.browser.ts; the Node-only branches that remain (Dawn from the
 * `webgpu` package, shaders read from disk) are behind runtime checks and only import lazily, so their modules are
 * left out. The WGSL kernels are built in (host.browser.ts), so the bundle is one self-contained file.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const browserHost = fileURLToPath(new URL('./src/engine/host.browser.ts', import.meta.url));

export default defineConfig({
  resolve: {
    alias: [{ find: /^(?:\.\.?\/)+host\.js$/, replacement: browserHost }],
  },
  build: {
    outDir: 'dist/browser',
    emptyOutDir: true,
    target: 'es2022',
    minify: false,
    sourcemap: true,
    lib: { entry: fileURLToPath(new URL('./src/engine/index.ts', import.meta.url)), formats: ['es'], fileName: () => 'skipgrad.js' },
    rollupOptions: { external: [/^node:/, 'webgpu'], output: { inlineDynamicImports: true } },
  },
});
