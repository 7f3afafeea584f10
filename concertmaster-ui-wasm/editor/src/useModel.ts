import { useEffect, useState } from 'react';
import { Model, type NodeDescriptor } from '@concertmaster/ui-wasm';

/** Where the WebAssembly module comes from, as `Model.load` takes it. */
export type WasmSource = Parameters<typeof Model.load>[1];

/**
 * Loads the graph model for `descriptors` (the host's node registry, custom
 * types included) once: `null` until it is ready. `error` says why it could not
 * load. Without `wasm`, the module is fetched from beside the model's script,
 * which bundlers such as Vite resolve.
 */
export function useModel(descriptors: NodeDescriptor[], wasm?: WasmSource): { model: Model | null; error: string | null } {
  const [state, setState] = useState<{ model: Model | null; error: string | null }>({ model: null, error: null });
  useEffect(() => {
    let live = true;
    let loaded: Model | null = null;
    Model.load(descriptors, wasm).then(
      (model) => {
        loaded = model;
        if (live) setState({ model, error: null });
        else model.free();
      },
      (err: unknown) => {
        if (live) setState({ model: null, error: String(err) });
      },
    );
    return () => {
      live = false;
      loaded?.free();
    };
  }, [descriptors, wasm]);
  return state;
}
