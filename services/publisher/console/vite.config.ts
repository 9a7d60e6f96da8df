import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The web console (docs/observability.md): two pages, the console and the key form /console
// answers without the key, built to console/dist. The publisher serves the pages itself (after
// the key check) and dist/assets/ as static files under /console/assets/. Vite bundles the
// client library in; the pages load no inline script or style (their CSP allows only 'self').
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/console/',
  logLevel: 'warn',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    rolldownOptions: { input: { console: 'index.html', key: 'key.html' } },
  },
});
