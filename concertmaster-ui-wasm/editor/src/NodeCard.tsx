import { Handle, Position, type NodeProps } from '@xyflow/react';
import type { FlowNode, NodeCategory } from '@concertmaster/ui-wasm';
import { useEditor } from './context';
import { iconOf, outputHandles } from './nodeFacts';
import { NodeTitle } from './NodeTitle';

const PORT_SPACING = 18;

/**
 * A workflow node on the canvas. Its handles are the ports the model says the
 * node has for its config (a switch's cases, the error port every node has);
 * its body is the host's renderer for the type if it gave one.
 */
export function NodeCard({ id, type, data, selected }: NodeProps) {
  const { model, diagnostics, renderers, icons, categories } = useEditor();
  const entry = model.entry(type);
  const nodeData = data as FlowNode['data'];
  const config = (nodeData.config ?? {}) as Record<string, unknown>;
  const outputs = outputHandles(model, type, config);
  const inputs = entry?.inputs.map((p) => p.name) ?? ['main'];
  const problems = diagnostics.filter((d) => d.nodeId === id || d.related?.includes(id));
  const errors = problems.filter((d) => d.severity === 'error');
  const category: NodeCategory = categories.get(type) ?? 'logic';
  const label = nodeData.label ?? entry?.label ?? type;
  const Icon = iconOf(entry, icons, category);
  const Renderer = renderers[type];
  const classes = ['cm-node', `cm-cat-${category}`, errors.length ? 'cm-invalid' : problems.length ? 'cm-warned' : '', selected ? 'cm-selected' : '']
    .filter(Boolean)
    .join(' ');
  const height = Math.max(inputs.length, outputs.length) * PORT_SPACING + 30;
  return (
    <div className={classes} style={{ minHeight: height }} data-testid={`node-${id}`} title={problems.map((p) => p.message).join('\n') || undefined}>
      {Renderer ? (
        <Renderer id={id} typeId={type} config={config} label={label} entry={entry} diagnostics={problems} selected={Boolean(selected)} />
      ) : (
        <NodeTitle icon={Icon} label={label} typeId={type} />
      )}
      {errors.length > 0 && (
        <div className="cm-node-badge" aria-label={`${errors.length} error${errors.length === 1 ? '' : 's'}`}>
          {errors.length}
        </div>
      )}
      {inputs.map((port, i) => (
        <Handle key={`in-${port}`} type="target" position={Position.Left} id={port} style={{ top: 24 + i * PORT_SPACING }} />
      ))}
      {outputs.map((port, i) => (
        <Handle
          key={`out-${port}`}
          type="source"
          position={Position.Right}
          id={port}
          style={{ top: 24 + i * PORT_SPACING }}
          className={port === 'error' ? 'cm-error-port' : undefined}
        >
          <span className="cm-port-label">{port}</span>
        </Handle>
      ))}
    </div>
  );
}
