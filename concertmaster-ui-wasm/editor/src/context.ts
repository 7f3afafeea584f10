import { createContext, useContext, type ComponentType } from 'react';
import type { Diagnostic, Model, NodeCategory, PaletteEntry } from '@concertmaster/ui-wasm';

/** What a host's renderer of its own node type gets: the node and what the model says of it. */
export interface NodeRendererProps {
  /** The node's id in the workflow. */
  id: string;
  /** Its node type. */
  typeId: string;
  /** Its config as the editor holds it. */
  config: Record<string, unknown>;
  /** Its label (the node's own, else its type's). */
  label: string;
  /** The palette entry of its type, `null` for a type the model does not know. */
  entry: PaletteEntry | null;
  /** The diagnostics that concern it. */
  diagnostics: Diagnostic[];
  /** Whether it is selected. */
  selected: boolean;
}

/** An icon component, as lucide-react's are. */
export type IconComponent = ComponentType<{ size?: number; 'aria-hidden'?: boolean | 'true' | 'false' }>;

/** The model, the diagnostics and the host's renderers, for the node cards. */
export interface EditorState {
  model: Model;
  diagnostics: Diagnostic[];
  renderers: Record<string, ComponentType<NodeRendererProps>>;
  icons: Record<string, IconComponent>;
  /** The palette category of each node type. */
  categories: Map<string, NodeCategory>;
}

export const EditorContext = createContext<EditorState | null>(null);

export function useEditor(): EditorState {
  const state = useContext(EditorContext);
  if (!state) throw new Error('a ConcertMaster node card was drawn outside <WorkflowEditor>');
  return state;
}
