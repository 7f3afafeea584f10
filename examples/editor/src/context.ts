import { createContext, useContext } from 'react';
import type { Diagnostic, Model } from '@concertmaster/ui-wasm';

/** The model and the current diagnostics, for the node cards. */
export interface EditorState {
  model: Model;
  diagnostics: Diagnostic[];
}

export const EditorContext = createContext<EditorState | null>(null);

export function useEditor(): EditorState {
  const state = useContext(EditorContext);
  if (!state) throw new Error('useEditor outside the editor');
  return state;
}
