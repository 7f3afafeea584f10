import { useEffect, useMemo, useRef, useState } from 'react';
import { Model, type NodeDescriptor } from '@concertmaster/ui-wasm';

/** Where the WebAssembly module comes from, as `Model.load` takes it. */
export type WasmSource = Parameters<typeof Model.load>[1];

/**
 * Loads the graph model for `descriptors` (the host's node registry, custom
 * types included) once, and again only when they change in value: `null`
 * until it is ready; `error` says why it could not load. Without `wasm`, the
 * module is fetched from beside the model's script, which bundlers such as
 * Vite resolve; `wasm` is read when the model loads.
 */
export function useModel(descriptors: NodeDescriptor[], wasm?: WasmSource): { model: Model | null; error: string | null } {
  const [state, setState] = useState<{ model: Model | null; error: string | null }>({ model: null, error: null });
  // By value: a host that builds the list on each render (`[...types, own]`)
  // loads the model once, not on every render.
  const key = useMemo(() => JSON.stringify(descriptors), [descriptors]);
  const source = useRef(wasm);
  source.current = wasm;
  useEffect(() => {
    let live = true;
    Model.load(JSON.parse(key) as NodeDescriptor[], source.current).then(
      (model) => {
        if (live) setState({ model, error: null });
        else model.free();
      },
      (err: unknown) => {
        if (live) setState({ model: null, error: String(err) });
      },
    );
    return () => {
      live = false;
    };
  }, [key]);
  // A model is freed once another has replaced it on screen, or on unmount:
  // never while a component may still draw with it.
  useEffect(() => {
    const shown = state.model;
    return () => shown?.free();
  }, [state.model]);
  return state;
}
