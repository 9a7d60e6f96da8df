import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The browser bundle: one file per format, socketcluster-client included (its `browser` field
// swaps `ws` for the native WebSocket). Node users import the package's dist/ instead.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  logLevel: 'warn',
  build: {
    outDir: 'dist/browser',
    emptyOutDir: true,
    sourcemap: true,
    lib: {
      entry: 'src/index.ts',
      name: 'SocketBridge',
      formats: ['es', 'iife'],
      fileName: (format) => `socketbridge-client.${format === 'es' ? 'mjs' : 'js'}`,
    },
  },
});
