import { useMemo, useState, type CSSProperties } from 'react';
import { Background, Controls, Handle, Position, ReactFlow, ReactFlowProvider, type Edge, type Node, type NodeProps } from '@xyflow/react';
import type { Model, NodeCategory, WorkflowDefinition } from '@concertmaster/ui-wasm';
import type { IconComponent } from './context';
import { BUILT_IN_ICONS } from './icons';
import { categoriesOf, iconOf, outputHandles } from './nodeFacts';
import { NodeTitle } from './NodeTitle';
import type { NodeExecution, NodeStatus, RunDetail } from './run';
import type { Theme } from './WorkflowEditor';

/** The props of {@link RunView}. */
export interface RunViewProps {
  /** The graph model (node types, their icons and ports). */
  model: Model;
  /** The workflow version the run executes. */
  definition: WorkflowDefinition;
  /** The run as the engine gives it; pass a newer one to update the view. */
  run: RunDetail;
  /** Icons by the name node descriptors give, beside the built-in ones. */
  icons?: Record<string, IconComponent>;
  /** Light, dark, or as the user's system says (the default). */
  theme?: Theme;
  /** A class for the root element. */
  className?: string;
  /** Styles for the root element: its size, and `--cm-*` custom properties. */
  style?: CSSProperties;
}

const STATUS_WORDS: Record<NodeStatus | 'not_reached', string> = {
  running: 'Running',
  waiting: 'Waiting',
  succeeded: 'Succeeded',
  failed: 'Failed',
  skipped: 'Skipped',
  cancelled: 'Cancelled',
  not_reached: 'Not reached',
};

interface RunNodeData extends Record<string, unknown> {
  label: string;
  typeId: string;
  icon: IconComponent;
  category: NodeCategory;
  record?: NodeExecution;
  outputs: string[];
  inputs: string[];
}

function when(iso?: string): string {
  if (!iso) return '';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

function duration(record: NodeExecution): string {
  if (!record.startedAt || !record.endedAt) return '';
  const ms = new Date(record.endedAt).getTime() - new Date(record.startedAt).getTime();
  if (!(ms >= 0)) return '';
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** What a waiting node waits for, in words. */
function waitsFor(record: NodeExecution): string {
  const wait = record.wait;
  if (!wait) return 'an event';
  const until = wait.until ? ` until ${when(wait.until)}` : '';
  // A plain timer's key is the engine's own: the time is what it waits for.
  if (wait.key.startsWith('timer:') && wait.until) return `the time${until}`;
  return `${wait.key}${until}`;
}

function RunNodeCard({ id, data, selected }: NodeProps<Node<RunNodeData>>) {
  const { record, label, typeId, icon, category, inputs, outputs } = data;
  const status = record?.status ?? 'not_reached';
  const classes = ['cm-node', 'cm-run-node', `cm-cat-${category}`, `cm-status-${status}`, selected ? 'cm-selected' : ''].filter(Boolean).join(' ');
  return (
    <div className={classes} data-testid={`run-node-${id}`} data-status={status}>
      <NodeTitle icon={icon} label={label} typeId={typeId} />
      <div className="cm-run-status">
        {STATUS_WORDS[status]}
        {record && record.attempt > 1 && <span className="cm-run-attempt"> · attempt {record.attempt}</span>}
      </div>
      {status === 'waiting' && record && <div className="cm-run-waits">for {waitsFor(record)}</div>}
      {record?.error && (
        <div className="cm-node-badge" aria-label="failed">
          !
        </div>
      )}
      {inputs.map((port, i) => (
        <Handle key={`in-${port}`} type="target" position={Position.Left} id={port} style={{ top: 24 + i * 18 }} isConnectable={false} />
      ))}
      {outputs.map((port, i) => (
        <Handle key={`out-${port}`} type="source" position={Position.Right} id={port} style={{ top: 24 + i * 18 }} isConnectable={false} />
      ))}
    </div>
  );
}

const NODE_TYPES = { run: RunNodeCard };

/** JSON of items, or a word where there are none. */
function Items({ ports, empty }: { ports?: Record<string, unknown>; empty: string }) {
  if (!ports || Object.keys(ports).length === 0) return <p className="cm-muted">{empty}</p>;
  return <pre className="cm-json">{JSON.stringify(ports, null, 2)}</pre>;
}

/**
 * A run of a workflow: its graph with each node in its status (attempts and
 * failures marked, skipped and unreached nodes dimmed, a waiting node saying
 * what it waits for), the selected node's input, output and error, and the
 * timeline of its nodes. Pass a newer run to update it.
 */
export function RunView(props: RunViewProps) {
  return (
    <ReactFlowProvider>
      <Run {...props} />
    </ReactFlowProvider>
  );
}

function Run({ model, definition, run, icons, theme = 'system', className, style }: RunViewProps) {
  const [selectedId, setSelectedId] = useState<string | null>(null);
  const allIcons = useMemo(() => ({ ...BUILT_IN_ICONS, ...icons }), [icons]);
  const categories = useMemo(
    () => categoriesOf(model),
    [model],
  );
  // A run read without its nodes (a role that may not see items) shows the graph unreached.
  const runNodes = useMemo(() => run.nodes ?? [], [run]);
  const records = useMemo(() => new Map(runNodes.map((r) => [r.nodeId, r])), [runNodes]);
  const drawn = useMemo(() => model.fromDefinition(definition), [model, definition]);

  const nodes = useMemo<Node[]>(
    () =>
      drawn.nodes.map((n) => {
        const drawingOnly = n.type === 'group' || n.data?.drawingOnly === true;
        if (drawingOnly) return { ...(n as unknown as Node), selectable: false, draggable: false };
        const typeId = n.type ?? '';
        const entry = model.entry(typeId);
        const category = categories.get(typeId) ?? 'logic';
        const config = (n.data?.config ?? {}) as Record<string, unknown>;
        const data: RunNodeData = {
          label: n.data?.label ?? entry?.label ?? typeId,
          typeId,
          icon: iconOf(entry, allIcons, category),
          category,
          record: records.get(n.id),
          inputs: entry?.inputs.map((p) => p.name) ?? ['main'],
          // A type this model lacks still shows its run's edges.
          outputs: outputHandles(model, typeId, config, ['main']),
        };
        return {
          id: n.id,
          type: 'run',
          position: n.position,
          data,
          selected: n.id === selectedId,
          draggable: false,
          connectable: false,
          // Inside a group, as drawn.
          parentId: (n as { parentId?: string }).parentId,
        } as Node;
      }),
    [drawn, model, categories, allIcons, records, selectedId],
  );
  const edges = useMemo<Edge[]>(
    () =>
      drawn.edges.map((e) => {
        const target = records.get(e.target);
        const source = records.get(e.source);
        // An edge the run did not travel: into a node skipped or not reached.
        const idle = !target || target.status === 'skipped' || !source;
        return { ...(e as unknown as Edge), className: idle ? 'cm-edge-idle' : 'cm-edge-travelled', selectable: false, animated: target?.status === 'running' };
      }),
    [drawn, records],
  );

  const selected = selectedId ? records.get(selectedId) : undefined;
  const selectedLabel = selectedId ? (nodes.find((n) => n.id === selectedId)?.data as RunNodeData | undefined)?.label : undefined;
  const timeline = useMemo(
    () =>
      [...runNodes].sort((a, b) => (a.startedAt ?? a.endedAt ?? '').localeCompare(b.startedAt ?? b.endedAt ?? '')),
    [runNodes],
  );
  const rootClass = ['cm-editor-root', 'cm-run-root', className].filter(Boolean).join(' ');
  return (
    <div className={rootClass} data-theme={theme} style={style} data-testid="run-view" data-run-status={run.run.status}>
      <div className="cm-canvas" role="region" aria-label={`Run ${run.run.id}`}>
        <ReactFlow
          nodes={nodes}
          edges={edges}
          nodeTypes={NODE_TYPES}
          nodesDraggable={false}
          nodesConnectable={false}
          edgesFocusable={false}
          deleteKeyCode={null}
          onNodeClick={(_, node) => setSelectedId(node.type === 'run' ? node.id : null)}
          onPaneClick={() => setSelectedId(null)}
          onlyRenderVisibleElements
          colorMode={theme}
          fitView
          fitViewOptions={{ maxZoom: 1 }}
        >
          <Background />
          <Controls showInteractive={false} />
        </ReactFlow>
      </div>
      <aside className="cm-side" aria-label="Run details">
        <section aria-label="Run">
          <h2>
            Run <span className={`cm-run-chip cm-status-${run.run.status}`}>{run.run.status}</span>
          </h2>
          <p className="cm-muted">
            {definition.name} v{run.run.workflowVersion} · started {when(run.run.createdAt)}
            {run.run.endedAt ? ` · ended ${when(run.run.endedAt)}` : ''}
          </p>
          {run.run.error && <p className="cm-run-error">{run.run.error}</p>}
        </section>
        <section aria-label="Selected node" data-testid="run-node-details">
          <h2>{selectedId ? (selectedLabel ?? selectedId) : 'Select a node'}</h2>
          {selectedId && !selected && <p className="cm-muted">This node was not reached.</p>}
          {selected && (
            <>
              <p>
                {STATUS_WORDS[selected.status]}
                {selected.attempt > 1 ? `, attempt ${selected.attempt}` : ''}
                {duration(selected) ? `, ${duration(selected)}` : ''}
              </p>
              {selected.status === 'waiting' && <p>Waits for {waitsFor(selected)}.</p>}
              {selected.error && (
                <p className="cm-run-error" data-testid="run-node-error">
                  {selected.error.message}
                </p>
              )}
              <h3>Input</h3>
              <Items ports={selected.input} empty="No input items." />
              <h3>Output</h3>
              <Items ports={selected.output} empty={selected.status === 'succeeded' ? 'No output items.' : 'No output yet.'} />
            </>
          )}
        </section>
        <section aria-label="Timeline">
          <h2>Timeline</h2>
          <ol className="cm-timeline" data-testid="run-timeline">
            {timeline.map((r) => (
              <li key={r.nodeId} className={`cm-status-${r.status}`}>
                <button type="button" onClick={() => setSelectedId(r.nodeId)} aria-pressed={selectedId === r.nodeId}>
                  <strong>{r.nodeId}</strong> {STATUS_WORDS[r.status]}
                  {r.attempt > 1 ? ` (attempt ${r.attempt})` : ''}
                  <span className="cm-muted"> {when(r.startedAt ?? r.endedAt)}</span>
                </button>
              </li>
            ))}
          </ol>
        </section>
      </aside>
    </div>
  );
}
