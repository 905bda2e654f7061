import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');

/**
 * The console is a static bundle the gateway serves from dist/ui under a strict CSP, so the
 * output must not rely on inline scripts or styles: Vite's entry is an external module script and
 * every stylesheet is a file. TSX goes through Vite's own transformer (Oxc in Vite 8, which
 * replaces the deprecated `esbuild` option) with Preact's automatic JSX runtime.
 */
export default defineConfig({
  root: here,
  base: '/',
  publicDir: false,
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: path.join(repo, 'dist/ui'),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    // The terminal and the replay player are big by nature and load only on their own pages.
    chunkSizeWarningLimit: 700,
    // Vite would inline small assets as data: URLs; fonts and images as files keep CSP simple.
    assetsInlineLimit: 0,
  },
  server: {
    // `vite` for development: the gateway answers the API (start one with `npm start`).
    proxy: { '/api': { target: 'https://127.0.0.1:8443', secure: false, ws: true } },
  },
});
