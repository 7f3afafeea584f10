/**
 * ConcertMaster's editor components for a host's React app.
 *
 * ```tsx
 * import { WorkflowEditor, useModel } from '@concertmaster/editor';
 * import '@concertmaster/editor/style.css';
 *
 * function Designer({ descriptors, workflow, save }) {
 *   const { model } = useModel(descriptors);
 *   if (!model) return <p>Loading…</p>;
 *   return <WorkflowEditor model={model} defaultValue={workflow} onChange={(definition, diagnostics) => save(definition, diagnostics)} />;
 * }
 * ```
 */
export { WorkflowEditor } from './WorkflowEditor';
export type { Theme, WorkflowEditorProps } from './WorkflowEditor';
export type { IconComponent, NodeRendererProps } from './context';
export { FormBuilder } from './FormBuilder';
export type { FormBuilderProps } from './FormBuilder';
export { RunView } from './RunView';
export type { RunViewProps } from './RunView';
export type { NodeExecution, NodeFailure, NodeStatus, NodeWait, Ports, RunDetail, RunRecord, RunStatus } from './run';
export { useModel } from './useModel';
export type { WasmSource } from './useModel';
export { BUILT_IN_ICONS } from './icons';
