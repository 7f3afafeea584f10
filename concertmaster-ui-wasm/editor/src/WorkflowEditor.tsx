import {
  useCallback,
  useEffect,
  useId,
  useMemo,
  useRef,
  useState,
  type ComponentType,
  type CSSProperties,
  type DragEvent,
  type KeyboardEvent,
} from 'react';
import {
  Background,
  Controls,
  MiniMap,
  Panel,
  ReactFlow,
  ReactFlowProvider,
  addEdge,
  useEdgesState,
  useNodesInitialized,
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
import type { Connection, Diagnostic, FlowObject, Model, NodeCategory, PaletteEntry, WorkflowDefinition } from '@concertmaster/ui-wasm';
import { ConnectPanel } from './ConnectPanel';
import { useHistory, type Snapshot } from './history';
import { EditorContext, type IconComponent, type NodeRendererProps } from './context';
import { BUILT_IN_ICONS } from './icons';
import { NodeCard } from './NodeCard';
import { categoriesOf, outputHandles } from './nodeFacts';
import { CONFIG_WIDGETS } from './widgets';

/** The colour scheme of the components; `system` follows the user's setting. */
export type Theme = 'light' | 'dark' | 'system';

/** The props of {@link WorkflowEditor}. */
export interface WorkflowEditorProps {
  /**
   * The graph model, loaded with the descriptors of the host's node registry
   * (custom types included): `await Model.load(descriptors)` or {@link useModel}.
   */
  model: Model;
  /** The workflow shown, for a controlled editor: pass back what `onChange` gave. */
  value?: WorkflowDefinition;
  /** The workflow an uncontrolled editor starts with. */
  defaultValue?: WorkflowDefinition;
  /** Every change of the workflow, with what publishing it would refuse or warn about. */
  onChange?: (definition: WorkflowDefinition, diagnostics: Diagnostic[]) => void;
  /** Shows the workflow without letting it be changed. */
  readOnly?: boolean;
  /** The host's own drawing of the body of its node types, by type id; handles and badges stay the editor's. */
  nodeRenderers?: Record<string, ComponentType<NodeRendererProps>>;
  /** Icons by the name node descriptors give (`icon`), beside the built-in ones. */
  icons?: Record<string, IconComponent>;
  /** Light, dark, or as the user's system says (the default). */
  theme?: Theme;
  /** A class for the editor's root element. */
  className?: string;
  /** Styles for the editor's root element: its size, and the `--cm-*` custom properties to re-theme it. */
  style?: CSSProperties;
}

const EMPTY: WorkflowDefinition = { id: 'workflow', name: 'Untitled workflow', nodes: [], edges: [] };
const DRAG_TYPE = 'application/x-concertmaster-node';

/** Diagnostics with a JSON pointer as @rjsf's error schema: shown under their field. */
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

/** What React Flow keeps on a node or edge while it is being edited, and no definition should: saved, it would make selecting a node a change. */
const TRANSIENT = ['selected', 'dragging', 'measured', 'resizing', 'width', 'height'] as const;

function persistent<T extends object>(element: T): T {
  const copy = { ...element } as Record<string, unknown>;
  for (const key of TRANSIENT) delete copy[key];
  return copy as T;
}

/** Default size of a node not measured yet, for placing new ones. */
const NODE_SIZE = { width: 190, height: 70 };

/** The first place below `start` where a new node overlaps none of `nodes`. */
function freeSpot(nodes: Node[], start: { x: number; y: number }): { x: number; y: number } {
  const at = { ...start };
  const overlaps = () =>
    nodes.some((n) => {
      const w = n.measured?.width ?? NODE_SIZE.width;
      const h = n.measured?.height ?? NODE_SIZE.height;
      return at.x < n.position.x + w && at.x + NODE_SIZE.width > n.position.x && at.y < n.position.y + h && at.y + NODE_SIZE.height > n.position.y;
    });
  for (let tries = 0; tries < 50 && overlaps(); tries += 1) at.y += NODE_SIZE.height + 20;
  return at;
}

/** The definition without its graph: what `toDefinition` keeps around the nodes and edges. */
function metadata(definition: WorkflowDefinition): Pick<WorkflowDefinition, 'id' | 'name'> & Partial<WorkflowDefinition> {
  const { nodes: _nodes, edges: _edges, ...rest } = definition;
  return rest;
}

/**
 * The workflow editor: a palette of the model's node types (by category, with
 * search; drag an entry onto the canvas, or press Enter on it), the canvas
 * (React Flow; handles, connection checks and diagnostics from the model), the
 * selected node's config form in schema order, and the diagnostics.
 */
export function WorkflowEditor(props: WorkflowEditorProps) {
  return (
    <ReactFlowProvider>
      <Editor {...props} />
    </ReactFlowProvider>
  );
}

function Editor({
  model,
  value,
  defaultValue,
  onChange,
  readOnly = false,
  nodeRenderers,
  icons,
  theme = 'system',
  className,
  style,
}: WorkflowEditorProps) {
  const initial = value ?? defaultValue ?? EMPTY;
  // What the editor starts with; later values reach it through the effect below.
  const [imported] = useState(() => model.fromDefinition(initial));
  const [nodes, setNodes, onNodesChange] = useNodesState<Node>(imported.nodes as Node[]);
  const [edges, setEdges, onEdgesChange] = useEdgesState<Edge>(imported.edges as Edge[]);
  const meta = useRef(metadata(initial));
  const { screenToFlowPosition, getViewport } = useReactFlow();
  const canvas = useRef<HTMLDivElement>(null);
  const [search, setSearch] = useState('');
  const [announcement, setAnnouncement] = useState('');
  const ids = useId();

  const palette = useMemo(() => model.palette(), [model]);
  const categories = useMemo(
    () => categoriesOf(model),
    [model],
  );
  const nodeTypes = useMemo(() => Object.fromEntries([...categories.keys()].map((typeId) => [typeId, NodeCard])), [categories]);
  const allIcons = useMemo(() => ({ ...BUILT_IN_ICONS, ...icons }), [icons]);
  const renderers = useMemo(() => nodeRenderers ?? {}, [nodeRenderers]);

  // One object per change of the drawing, the same for every question
  // asked about it: the model reads a drawing once and answers the
  // diagnostics, the definition and each connection dragged from that.
  const flow = useMemo(
    (): FlowObject =>
      ({ nodes: nodes.map(persistent), edges: edges.map(persistent), viewport: getViewport() }) as unknown as FlowObject,
    [nodes, edges, getViewport],
  );
  const diagnostics = useMemo(() => model.diagnose(flow), [model, flow]);

  const { changed: recordStep, reset: resetHistory, undo, redo, canUndo, canRedo } = useHistory(
    useCallback(
      (snapshot: Snapshot) => {
        setNodes(snapshot.nodes);
        setEdges(snapshot.edges);
      },
      [setNodes, setEdges],
    ),
  );

  // Tell the host of every change of the definition, and of nothing else
  // (selecting or measuring a node changes no definition). Each change is
  // a step to undo; a drag is one step, when it ends.
  const lastEmitted = useRef<string | null>(null);
  const wasDragging = useRef(false);
  useEffect(() => {
    let definition: WorkflowDefinition;
    try {
      definition = model.toDefinition(flow, meta.current);
    } catch {
      return;
    }
    const json = JSON.stringify(definition);
    const dragging = nodes.some((n) => n.dragging);
    const dragEnded = wasDragging.current && !dragging;
    wasDragging.current = dragging;
    if (lastEmitted.current === null) {
      lastEmitted.current = json;
      recordStep({ nodes, edges });
      return;
    }
    if (dragEnded || (json !== lastEmitted.current && !dragging)) recordStep({ nodes, edges });
    if (json === lastEmitted.current) return;
    lastEmitted.current = json;
    onChange?.(definition, diagnostics);
  }, [model, flow, nodes, edges, diagnostics, onChange, recordStep]);

  // A controlled editor follows a value the host changed itself.
  const fitPending = useRef(false);
  useEffect(() => {
    if (!value) return;
    const json = JSON.stringify(value);
    if (json === lastEmitted.current) return;
    const next = model.fromDefinition(value);
    meta.current = metadata(value);
    lastEmitted.current = json;
    resetHistory();
    fitPending.current = true;
    setNodes(next.nodes as Node[]);
    setEdges(next.edges as Edge[]);
  }, [model, value, setNodes, setEdges, resetHistory]);

  // Another workflow is shown whole once its nodes are measured.
  const measured = useNodesInitialized();
  const { fitView } = useReactFlow();
  useEffect(() => {
    if (!measured || !fitPending.current) return;
    fitPending.current = false;
    void fitView({ maxZoom: 1 });
  }, [measured, fitView]);

  const isValidConnection: IsValidConnection = useCallback(
    (c) => {
      if (readOnly) return false;
      const issues = model.connectionIssues(flow, {
        source: c.source,
        sourceHandle: c.sourceHandle ?? null,
        target: c.target,
        targetHandle: c.targetHandle ?? null,
      });
      // A cycle may be drawn while rewiring; it then shows as a diagnostic.
      return issues.every((d) => d.kind === 'cycle');
    },
    [model, flow, readOnly],
  );

  const edgeCounter = useRef(0);
  const onConnect = useCallback(
    (c: FlowConnection) => {
      setEdges((es) => {
        const taken = new Set(es.map((e) => e.id));
        do edgeCounter.current += 1;
        while (taken.has(`e${edgeCounter.current}`));
        return addEdge({ ...c, id: `e${edgeCounter.current}` }, es);
      });
    },
    [setEdges],
  );

  const addNode = useCallback(
    (entry: PaletteEntry, position?: { x: number; y: number }) => {
      let at = position;
      if (!at) {
        // Enter on a palette entry: near the top of what the canvas shows,
        // below the nodes already there.
        const box = canvas.current?.getBoundingClientRect();
        const corner = box ? { x: box.left + box.width / 3, y: box.top + 40 } : { x: 0, y: 0 };
        at = freeSpot(nodes, screenToFlowPosition(corner));
      }
      const taken = new Set(nodes.map((n) => n.id));
      let n = 1;
      while (taken.has(`${entry.typeId}-${n}`)) n += 1;
      const id = `${entry.typeId}-${n}`;
      const node: Node = { id, type: entry.typeId, position: at, selected: true, data: { config: structuredClone(entry.defaultConfig) } };
      setNodes((ns) => [...ns.map((x) => (x.selected ? { ...x, selected: false } : x)), node]);
      setAnnouncement(`${entry.label} added as ${id}`);
    },
    [nodes, screenToFlowPosition, setNodes],
  );

  // Copy and paste: the selected nodes and the edges between them, pasted
  // with ids of their own beside where they were.
  const clipboard = useRef<Snapshot | null>(null);
  const copy = useCallback(() => {
    const chosen = nodes.filter((n) => n.selected && categories.has(n.type ?? ''));
    if (chosen.length === 0) return;
    const ids = new Set(chosen.map((n) => n.id));
    clipboard.current = { nodes: chosen, edges: edges.filter((e) => ids.has(e.source) && ids.has(e.target)) };
    setAnnouncement(`${chosen.length} node${chosen.length === 1 ? '' : 's'} copied`);
  }, [nodes, edges, categories]);
  const paste = useCallback(() => {
    const copied = clipboard.current;
    if (!copied || readOnly) return;
    const taken = new Set(nodes.map((n) => n.id));
    const renamed = new Map<string, string>();
    for (const n of copied.nodes) {
      let k = 1;
      while (taken.has(`${n.type}-${k}`)) k += 1;
      taken.add(`${n.type}-${k}`);
      renamed.set(n.id, `${n.type}-${k}`);
    }
    const pasted: Node[] = copied.nodes.map((n) => ({
      ...persistent(n),
      id: renamed.get(n.id) as string,
      position: { x: n.position.x + 40, y: n.position.y + 40 },
      data: structuredClone(n.data),
      selected: true,
    }));
    setNodes((ns) => [...ns.map((n) => (n.selected ? { ...n, selected: false } : n)), ...pasted]);
    setEdges((es) => {
      const edgeIds = new Set(es.map((e) => e.id));
      const added = copied.edges.map((e) => {
        do edgeCounter.current += 1;
        while (edgeIds.has(`e${edgeCounter.current}`));
        return { ...persistent(e), id: `e${edgeCounter.current}`, source: renamed.get(e.source) as string, target: renamed.get(e.target) as string };
      });
      return [...es, ...added];
    });
    setAnnouncement(`${pasted.length} node${pasted.length === 1 ? '' : 's'} pasted`);
  }, [nodes, readOnly, setNodes, setEdges]);

  // Auto-layout: the model's layered layout of the workflow as it stands.
  const arrange = useCallback(() => {
    if (readOnly) return;
    const definition = model.toDefinition(flow, meta.current);
    const laid = model.fromDefinition({ ...definition, nodes: definition.nodes.map(({ position: _position, ...rest }) => rest) });
    const placed = new Map(laid.nodes.map((n) => [n.id, n.position]));
    setNodes((ns) => ns.map((n) => (placed.has(n.id) && !n.parentId ? { ...n, position: placed.get(n.id) as Node['position'] } : n)));
    setAnnouncement('Nodes arranged');
    requestAnimationFrame(() => void fitView({ maxZoom: 1 }));
  }, [model, flow, readOnly, setNodes, fitView]);

  // Shortcuts anywhere in the editor but in a field, whose own undo, copy
  // and paste are the text's.
  const onKeyDown = (event: KeyboardEvent) => {
    const target = event.target as HTMLElement;
    if (target.closest('input, textarea, select, [contenteditable="true"]')) return;
    if (!(event.ctrlKey || event.metaKey)) return;
    const key = event.key.toLowerCase();
    const act = key === 'z' ? (event.shiftKey ? redo : undo) : key === 'y' ? redo : key === 'c' ? copy : key === 'v' ? paste : null;
    if (!act || (readOnly && act !== copy)) return;
    event.preventDefault();
    act();
  };

  const onDragOver = useCallback((event: DragEvent) => {
    event.preventDefault();
    event.dataTransfer.dropEffect = 'move';
  }, []);
  const onDrop = useCallback(
    (event: DragEvent) => {
      event.preventDefault();
      const typeId = event.dataTransfer.getData(DRAG_TYPE);
      const entry = typeId ? model.entry(typeId) : null;
      if (!entry || readOnly) return;
      addNode(entry, screenToFlowPosition({ x: event.clientX, y: event.clientY }));
    },
    [model, readOnly, addNode, screenToFlowPosition],
  );

  // React Flow's groups and a host's notes are drawing only: no config.
  const selected = nodes.find((n) => n.selected && categories.has(n.type ?? ''));
  const selectedEntry = selected?.type ? model.entry(selected.type) : null;
  const selectedProblems = diagnostics.filter((d) => d.nodeId === selected?.id && d.pointer !== undefined);
  const selectedOutputs = useMemo(() => {
    if (!selected?.type) return [];
    return outputHandles(model, selected.type, ((selected.data as { config?: Record<string, unknown> }).config ?? {}) as Record<string, unknown>);
  }, [model, selected]);
  const updateConfig = (config: Record<string, unknown>) => {
    if (!selected || readOnly) return;
    setNodes((ns) => ns.map((n) => (n.id === selected.id ? { ...n, data: { ...n.data, config } } : n)));
  };
  const deleteSelected = () => {
    if (!selected || readOnly) return;
    setNodes((ns) => ns.filter((n) => n.id !== selected.id));
    setEdges((es) => es.filter((e) => e.source !== selected.id && e.target !== selected.id));
    setAnnouncement(`${selected.id} deleted`);
  };

  const errorsByEdge = new Map(diagnostics.filter((d) => d.edgeId).map((d) => [d.edgeId as string, d]));
  const cycles = diagnostics.filter((d) => d.related?.length).map((d) => new Set(d.related));
  const streaming = new Set(
    nodes.filter((n) => model.streamsInput(n.type ?? '', (n.data?.config ?? {}) as Record<string, unknown>)).map((n) => n.id),
  );
  const shownEdges = edges.map((e) => {
    const problem = errorsByEdge.get(e.id);
    const inCycle = cycles.some((c) => c.has(e.source) && c.has(e.target));
    // An edge into a node that streams carries items while both run.
    const shown = streaming.has(e.target) ? { ...e, animated: true, className: 'cm-edge-streaming' } : e;
    return problem || inCycle ? { ...shown, className: 'cm-edge-invalid', label: problem?.message ?? e.label } : shown;
  });

  const query = search.trim().toLowerCase();
  // Searching lists the matches best first (a name that starts with the
  // words typed, then one that holds them, then a description that does),
  // so that Tab then Enter adds what was meant.
  const relevance = (e: PaletteEntry): number => {
    const label = e.label.toLowerCase();
    const typeId = e.typeId.toLowerCase();
    if (label.startsWith(query) || typeId.startsWith(query)) return 0;
    if (label.includes(query) || typeId.includes(query)) return 1;
    return e.description.toLowerCase().includes(query) ? 2 : 3;
  };
  const shownPalette = query
    ? [
        {
          category: 'matches' as NodeCategory | 'matches',
          label: 'Matches',
          entries: palette
            .flatMap((g) => g.entries)
            .map((e) => [relevance(e), e] as const)
            .filter(([score]) => score < 3)
            .sort((a, b) => a[0] - b[0])
            .map(([, e]) => e),
        },
      ].filter((g) => g.entries.length > 0)
    : palette.map((g) => ({ ...g, category: g.category as NodeCategory | 'matches' }));

  const rootClass = ['cm-editor-root', className].filter(Boolean).join(' ');
  return (
    <EditorContext.Provider value={{ model, diagnostics, renderers, icons: allIcons, categories }}>
      <div className={rootClass} data-theme={theme} style={style} onKeyDown={onKeyDown}>
        {!readOnly && (
          <aside className="cm-palette" aria-label="Node types" data-testid="palette">
            <label className="cm-search" htmlFor={`${ids}-search`}>
              Find a node type
            </label>
            <input
              id={`${ids}-search`}
              type="search"
              value={search}
              onChange={(e) => setSearch(e.target.value)}
              placeholder="Search"
              data-testid="palette-search"
            />
            {shownPalette.map((group) => (
              <section key={group.category} aria-labelledby={`${ids}-${group.category}`}>
                <h3 id={`${ids}-${group.category}`}>{group.label}</h3>
                <ul>
                  {group.entries.map((entry) => {
                    const Icon = allIcons[entry.icon];
                    return (
                      <li key={entry.typeId}>
                        <button
                          type="button"
                          className={`cm-palette-entry cm-cat-${categories.get(entry.typeId) ?? group.category}`}
                          draggable
                          onDragStart={(event) => {
                            event.dataTransfer.setData(DRAG_TYPE, entry.typeId);
                            event.dataTransfer.effectAllowed = 'move';
                          }}
                          onClick={() => addNode(entry)}
                          title={entry.description}
                          aria-description={`${entry.description} Press Enter to add it to the canvas.`}
                          data-testid={`palette-${entry.typeId}`}
                        >
                          {Icon && <Icon size={14} aria-hidden="true" />}
                          {entry.label}
                        </button>
                      </li>
                    );
                  })}
                </ul>
              </section>
            ))}
            {shownPalette.length === 0 && <p className="cm-muted">No node type matches “{search}”.</p>}
          </aside>
        )}
        <div
          className="cm-canvas"
          ref={canvas}
          role="region"
          aria-label="Workflow canvas"
          data-testid="canvas"
          onDragOver={onDragOver}
          onDrop={onDrop}
        >
          <ReactFlow
            nodes={nodes}
            edges={shownEdges}
            nodeTypes={nodeTypes}
            onNodesChange={onNodesChange}
            onEdgesChange={onEdgesChange}
            onConnect={onConnect}
            isValidConnection={isValidConnection}
            nodesDraggable={!readOnly}
            nodesConnectable={!readOnly}
            edgesReconnectable={!readOnly}
            deleteKeyCode={readOnly ? null : ['Backspace', 'Delete']}
            onlyRenderVisibleElements
            colorMode={theme}
            fitView={imported.nodes.length > 0}
            fitViewOptions={{ maxZoom: 1 }}
            defaultViewport={{ x: 0, y: 0, zoom: 1 }}
          >
            <Background />
            {!readOnly && (
              <Panel position="top-left" className="cm-toolbar">
                <button type="button" onClick={undo} disabled={!canUndo} aria-keyshortcuts="Control+Z" data-testid="undo">
                  Undo
                </button>
                <button type="button" onClick={redo} disabled={!canRedo} aria-keyshortcuts="Control+Shift+Z" data-testid="redo">
                  Redo
                </button>
                <button type="button" onClick={arrange} data-testid="arrange">
                  Arrange
                </button>
              </Panel>
            )}
            <MiniMap pannable zoomable ariaLabel="Overview of the workflow" />
            <Controls showInteractive={!readOnly} />
          </ReactFlow>
          <p className="cm-visually-hidden" role="status" aria-live="polite">
            {announcement}
          </p>
        </div>
        <aside className="cm-side" aria-label="Details">
          <section className="cm-config" aria-labelledby={`${ids}-config`} data-testid="config-panel">
            <h2 id={`${ids}-config`}>{selected ? `Config of ${selected.id}` : 'Select a node'}</h2>
            {selected && selectedEntry && (
              <>
                <Form
                  key={selected.id}
                  schema={selectedEntry.configSchema as RJSFSchema}
                  formData={(selected.data as { config?: Record<string, unknown> }).config ?? {}}
                  validator={validator}
                  widgets={CONFIG_WIDGETS}
                  disabled={readOnly}
                  noHtml5Validate
                  showErrorList={false}
                  // The palette's default config holds the defaults already.
                  experimental_defaultFormStateBehavior={{ emptyObjectFields: 'skipDefaults', arrayMinItems: { populate: 'never' } }}
                  extraErrors={errorSchema(selectedProblems)}
                  uiSchema={{ ...selectedEntry.configUi, 'ui:submitButtonOptions': { norender: true } }}
                  onChange={(e) => updateConfig((e.formData ?? {}) as Record<string, unknown>)}
                />
                {!readOnly && (
                  <>
                    <ConnectPanel
                      key={`connect-${selected.id}`}
                      node={selected}
                      outputs={selectedOutputs}
                      nodes={nodes.filter((n) => categories.has(n.type ?? ''))}
                      edges={edges}
                      issues={(c: Connection) => model.connectionIssues(flow, c)}
                      connect={(c: Connection) => onConnect({ source: c.source, sourceHandle: c.sourceHandle ?? null, target: c.target, targetHandle: c.targetHandle ?? null })}
                      remove={(edgeId: string) => setEdges((es) => es.filter((e) => e.id !== edgeId))}
                      labelOf={(n: Node) => ((n.data as { label?: string }).label ?? model.entry(n.type ?? '')?.label ?? n.id)}
                      inputsOf={(n: Node) => model.entry(n.type ?? '')?.inputs.map((p) => p.name) ?? ['main']}
                    />
                    <button type="button" className="cm-danger" onClick={deleteSelected} data-testid="delete-node">
                      Delete {selected.id}
                    </button>
                  </>
                )}
              </>
            )}
          </section>
          <section className="cm-diagnostics" aria-labelledby={`${ids}-diagnostics`}>
            <h2 id={`${ids}-diagnostics`}>Diagnostics ({diagnostics.length})</h2>
            <ul data-testid="diagnostics">
              {diagnostics.map((d, i) => (
                <li key={i} className={`cm-${d.severity}`} data-kind={d.kind} data-node={d.nodeId} data-edge={d.edgeId}>
                  <strong>{d.nodeId ?? d.edgeId ?? 'workflow'}</strong>
                  {d.pointer ? <code>{d.pointer}</code> : null} {d.message}
                </li>
              ))}
            </ul>
          </section>
        </aside>
      </div>
    </EditorContext.Provider>
  );
}
