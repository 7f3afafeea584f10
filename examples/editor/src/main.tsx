import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { Model, type NodeDescriptor } from '@concertmaster/ui-wasm';
import wasmUrl from '@concertmaster/ui-wasm/concertmaster_ui_wasm_bg.wasm?url';
// The descriptors of every built-in node type; a host serves its own
// registry's descriptors (custom node types included) the same way.
import descriptors from '@concertmaster/ui-wasm/palette.json';
import '@concertmaster/editor/style.css';
import { App } from './App';
import './styles.css';

const model = await Model.load(descriptors as NodeDescriptor[], wasmUrl);

const root = document.getElementById('root');
if (root) {
  createRoot(root).render(
    <StrictMode>
      <App model={model} />
    </StrictMode>,
  );
}
