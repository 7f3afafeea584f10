import { Handle, Position, type NodeProps } from '@xyflow/react';
import type { FlowNode } from '@concertmaster/ui-wasm';
import { useEditor } from './context';

const ICONS: Record<string, string> = {
  trigger: '▶',
  collection: '✉',
  transform: '⚙',
  logic: '⑂',
  output: '⇪',
};

/** A node on the canvas: its handles are the ports the model says it has. */
export function NodeCard({ id, type, data, selected }: NodeProps) {
  const { model, diagnostics } = useEditor();
  const entry = model.entry(type);
  const config = ((data as FlowNode['data']).config ?? {}) as Record<string, unknown>;
  // Every node has an error port besides those its type declares.
  const declared = model.outputPorts(type, config) ?? [];
  const outputs = declared.includes('error') ? declared : [...declared, 'error'];
  const inputs = entry?.inputs.map((p) => p.name) ?? ['main'];
  const problems = diagnostics.filter((d) => d.nodeId === id || d.related?.includes(id));
  const errors = problems.filter((d) => d.severity === 'error');
  const category = model.palette().find((g) => g.entries.some((e) => e.typeId === type))?.category ?? 'logic';
  const label = (data as FlowNode['data']).label ?? entry?.label ?? type;
  const classes = ['cm-node', `cm-${category}`, errors.length ? 'cm-invalid' : problems.length ? 'cm-warned' : '', selected ? 'cm-selected' : '']
    .filter(Boolean)
    .join(' ');
  const height = Math.max(inputs.length, outputs.length) * 18 + 30;
  return (
    <div className={classes} style={{ minHeight: height }} data-testid={`node-${id}`} title={problems.map((p) => p.message).join('\n')}>
      <div className="cm-node-title">
        <span className="cm-icon">{ICONS[category] ?? '■'}</span> {label}
      </div>
      <div className="cm-node-type">{type}</div>
      {errors.length > 0 && <div className="cm-node-badge">{errors.length}</div>}
      {inputs.map((port, i) => (
        <Handle key={`in-${port}`} type="target" position={Position.Left} id={port} style={{ top: 24 + i * 18 }} />
      ))}
      {outputs.map((port, i) => (
        <Handle key={`out-${port}`} type="source" position={Position.Right} id={port} style={{ top: 24 + i * 18 }} className={port === 'error' ? 'cm-error-port' : undefined}>
          <span className="cm-port-label">{port}</span>
        </Handle>
      ))}
    </div>
  );
}
