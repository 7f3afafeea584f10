import { useCallback, useMemo, useRef, useState, type DragEvent } from 'react';
import {
  Background,
  Controls,
  MiniMap,
  ReactFlow,
  addEdge,
  useEdgesState,
  useNodesState,
  useReactFlow,
  type Connection as FlowConnection,
  type Edge,
  type IsValidConnection,
  type Node,
} from '@xyflow/react';
import Form from '@rjsf/core';
import type { ErrorSchema, RJSFSchema } from '@rjsf/utils';
import validator from '@rjsf/validator-ajv8';
import type { Diagnostic, FlowObject, Model, WorkflowDefinition } from '@concertmaster/ui-wasm';
import { EditorContext } from './context';
import { FormBuilder } from './FormBuilder';
import { NodeCard } from './NodeCard';

const DRAG_TYPE = 'application/x-concertmaster-node';

/** Diagnostics with a JSON pointer as @rjsf's error schema: shown under the field. */
function errorSchema(diagnostics: Diagnostic[]): ErrorSchema {
  const root: Record<string, unknown> = {};
  for (const d of diagnostics) {
    const path = (d.pointer ?? '').split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    let at = root;
    for (const key of path) {
      at[key] ??= {};
      at = at[key] as Record<string, unknown>;
    }
    const errors = (at.__errors as string[] | undefined) ?? [];
    at.__errors = [...errors, d.message];
  }
  return root as ErrorSchema;
}

export function App({ model }: { model: Model }) {
  const [nodes, setNodes, onNodesChange] = useNodesState<Node>([]);
  const [edges, setEdges, onEdgesChange] = useEdgesState<Edge>([]);
  const { screenToFlowPosition, getViewport, setViewport } = useReactFlow();
  const counter = useRef(0);
  const [workflow, setWorkflow] = useState({ id: 'supplier-export', name: 'Supplier export' });
  const [definitionText, setDefinitionText] = useState('');
  const [importError, setImportError] = useState<string | null>(null);
  const [mode, setMode] = useState<'workflow' | 'form'>('workflow');

  const palette = useMemo(() => model.palette(), [model]);
  const nodeTypes = useMemo(
    () => Object.fromEntries(palette.flatMap((g) => g.entries.map((e) => [e.typeId, NodeCard]))),
    [palette],
  );

  // What the model sees: the editor's own state, not the decorated view.
  const flow = useCallback(
    (ns: Node[] = nodes, es: Edge[] = edges): FlowObject => ({ nodes: ns, edges: es, viewport: getViewport() }) as FlowObject,
    [nodes, edges, getViewport],
  );
  const diagnostics = useMemo(() => model.diagnose({ nodes, edges } as unknown as FlowObject), [model, nodes, edges]);

  const isValidConnection: IsValidConnection = useCallback(
    (c) => {
      const issues = model.connectionIssues(flow(), {
        source: c.source,
        sourceHandle: c.sourceHandle ?? null,
        target: c.target,
        targetHandle: c.targetHandle ?? null,
      });
      // A cycle may be drawn while rewiring; it is then shown as a diagnostic.
      return issues.every((d) => d.kind === 'cycle');
    },
    [model, flow],
  );

  const onConnect = useCallback(
    (c: FlowConnection) => {
      counter.current += 1;
      setEdges((es) => addEdge({ ...c, id: `e${counter.current}` }, es));
    },
    [setEdges],
  );

  const onDragOver = useCallback((event: DragEvent) => {
    event.preventDefault();
    event.dataTransfer.dropEffect = 'move';
  }, []);

  const onDrop = useCallback(
    (event: DragEvent) => {
      event.preventDefault();
      const typeId = event.dataTransfer.getData(DRAG_TYPE);
      const entry = typeId ? model.entry(typeId) : null;
      if (!entry) return;
      const position = screenToFlowPosition({ x: event.clientX, y: event.clientY });
      const taken = new Set(nodes.map((n) => n.id));
      let n = 1;
      while (taken.has(`${typeId}-${n}`)) n += 1;
      const node: Node = { id: `${typeId}-${n}`, type: typeId, position, data: { config: structuredClone(entry.defaultConfig) } };
      setNodes((ns) => [...ns, node]);
    },
    [model, nodes, screenToFlowPosition, setNodes],
  );

  const selected = nodes.find((n) => n.selected);
  const selectedEntry = selected?.type ? model.entry(selected.type) : null;
  const selectedProblems = diagnostics.filter((d) => d.nodeId === selected?.id && d.pointer !== undefined);

  const updateConfig = (config: Record<string, unknown>) => {
    if (!selected) return;
    setNodes((ns) => ns.map((n) => (n.id === selected.id ? { ...n, data: { ...n.data, config } } : n)));
  };

  const errorsByEdge = new Map(diagnostics.filter((d) => d.edgeId).map((d) => [d.edgeId as string, d]));
  const cycles = diagnostics.filter((d) => d.related?.length).map((d) => new Set(d.related));
  const streaming = new Set(
    nodes
      .filter((n) => model.streamsInput(n.type ?? '', (n.data?.config ?? {}) as Record<string, unknown>))
      .map((n) => n.id),
  );
  const shownEdges = edges.map((e) => {
    const problem = errorsByEdge.get(e.id);
    const inCycle = cycles.some((nodes) => nodes.has(e.source) && nodes.has(e.target));
    // An edge into a node that streams carries items while both run.
    const shown = streaming.has(e.target) ? { ...e, animated: true } : e;
    return problem || inCycle ? { ...shown, className: 'cm-edge-invalid', label: problem?.message ?? e.label } : shown;
  });

  const exportDefinition = () => {
    const definition = model.toDefinition(flow(), workflow);
    setDefinitionText(JSON.stringify(definition, null, 2));
  };

  const importDefinition = () => {
    try {
      const definition = JSON.parse(definitionText) as WorkflowDefinition;
      const imported = model.fromDefinition(definition);
      setWorkflow({ id: definition.id, name: definition.name });
      setNodes(imported.nodes as Node[]);
      setEdges(imported.edges as Edge[]);
      if (imported.viewport) void setViewport(imported.viewport);
      setImportError(null);
    } catch (err) {
      setImportError(String(err));
    }
  };

  return (
    <EditorContext.Provider value={{ model, diagnostics }}>
      <nav className="cm-tabs">
        <button className={mode === 'workflow' ? 'cm-active' : ''} onClick={() => setMode('workflow')} data-testid="tab-workflow">
          Workflow
        </button>
        <button className={mode === 'form' ? 'cm-active' : ''} onClick={() => setMode('form')} data-testid="tab-form">
          Form builder
        </button>
      </nav>
      {mode === 'form' ? (
        <FormBuilder model={model} />
      ) : (
      <div className="cm-editor">
        <aside className="cm-palette" data-testid="palette">
          <h2>Nodes</h2>
          {palette.map((group) => (
            <section key={group.category}>
              <h3>{group.label}</h3>
              {group.entries.map((entry) => (
                <div
                  key={entry.typeId}
                  className={`cm-palette-entry cm-${group.category}`}
                  draggable
                  onDragStart={(event) => {
                    event.dataTransfer.setData(DRAG_TYPE, entry.typeId);
                    event.dataTransfer.effectAllowed = 'move';
                  }}
                  title={entry.description}
                  data-testid={`palette-${entry.typeId}`}
                >
                  {entry.label}
                </div>
              ))}
            </section>
          ))}
        </aside>
        <main className="cm-canvas" data-testid="canvas" onDragOver={onDragOver} onDrop={onDrop}>
          <ReactFlow
            nodes={nodes}
            edges={shownEdges}
            nodeTypes={nodeTypes}
            onNodesChange={onNodesChange}
            onEdgesChange={onEdgesChange}
            onConnect={onConnect}
            isValidConnection={isValidConnection}
            defaultViewport={{ x: 0, y: 0, zoom: 1 }}
            deleteKeyCode={['Backspace', 'Delete']}
          >
            <Background />
            <MiniMap pannable zoomable />
            <Controls />
          </ReactFlow>
        </main>
        <aside className="cm-side">
          <section className="cm-config" data-testid="config-panel">
            <h2>{selected ? `Config of ${selected.id}` : 'Select a node'}</h2>
            {selected && selectedEntry && (
              <Form
                key={selected.id}
                schema={selectedEntry.configSchema as RJSFSchema}
                formData={(selected.data as { config?: Record<string, unknown> }).config ?? {}}
                validator={validator}
                noValidate
                noHtml5Validate
                showErrorList={false}
                // The palette's default config holds the defaults already.
                experimental_defaultFormStateBehavior={{ emptyObjectFields: 'skipDefaults', arrayMinItems: { populate: 'never' } }}
                extraErrors={errorSchema(selectedProblems)}
                uiSchema={{ ...selectedEntry.configUi, 'ui:submitButtonOptions': { norender: true } }}
                onChange={(e) => updateConfig((e.formData ?? {}) as Record<string, unknown>)}
              />
            )}
          </section>
          <section className="cm-diagnostics">
            <h2>Diagnostics ({diagnostics.length})</h2>
            <ul data-testid="diagnostics">
              {diagnostics.map((d, i) => (
                <li key={i} className={`cm-${d.severity}`} data-kind={d.kind} data-node={d.nodeId} data-edge={d.edgeId}>
                  <strong>{d.nodeId ?? d.edgeId ?? 'workflow'}</strong>
                  {d.pointer ? <code>{d.pointer}</code> : null} {d.message}
                </li>
              ))}
            </ul>
          </section>
          <section className="cm-io">
            <h2>Workflow JSON</h2>
            <label>
              id <input value={workflow.id} onChange={(e) => setWorkflow({ ...workflow, id: e.target.value })} data-testid="workflow-id" />
            </label>
            <label>
              name <input value={workflow.name} onChange={(e) => setWorkflow({ ...workflow, name: e.target.value })} />
            </label>
            <div className="cm-buttons">
              <button onClick={exportDefinition} data-testid="export">
                Export
              </button>
              <button onClick={importDefinition} data-testid="import">
                Import
              </button>
            </div>
            {importError && <p className="cm-error">{importError}</p>}
            <textarea value={definitionText} onChange={(e) => setDefinitionText(e.target.value)} rows={12} data-testid="definition" spellCheck={false} />
          </section>
        </aside>
      </div>
      )}
    </EditorContext.Provider>
  );
}
