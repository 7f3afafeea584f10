import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The model package is built by scripts/build-ui-wasm into the crate's pkg/.
const wasmPackage = fileURLToPath(new URL('../../concertmaster-ui-wasm/pkg', import.meta.url));

export default defineConfig({
  plugins: [react()],
  // The editor package is linked from the repository; one React for both.
  resolve: { alias: { '@concertmaster/ui-wasm': wasmPackage }, dedupe: ['react', 'react-dom'] },
  // `npm run dev` talks to the example service at CONCERTMASTER_API (the
  // service itself serves the built editor at /editor/, same origin).
  server: {
    host: '127.0.0.1',
    fs: { allow: ['.', wasmPackage] },
    proxy: { '/api': process.env.CONCERTMASTER_API ?? 'http://127.0.0.1:8080' },
  },
  preview: { host: '127.0.0.1' },
  // Relative asset paths, so the build also works under /editor/ of a host.
  base: './',
  build: { target: 'es2022' },
});
