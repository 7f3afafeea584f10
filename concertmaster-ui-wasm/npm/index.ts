// Typed API of the ConcertMaster editor model. The WebAssembly module
// speaks JSON strings; this wrapper gives the editor typed objects.

import init, { EditorModel, buildForm, checkSubmission, type InitInput } from './concertmaster_ui_wasm.js';

/** A point on the canvas. */
export interface XYPosition {
  x: number;
  y: number;
}

/** Retry policy of a node (`data.retry`). */
export interface RetryPolicy {
  maxAttempts: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  multiplier?: number;
  jitter?: number;
}

/** What a node carries in React Flow's `data`: the engine reads `config`, `label`, `retry` and `timeoutMs`; the rest is kept as it is. */
export interface NodeData {
  /** A node of the drawing only (a host's note): kept in the definition's `ui`, never a workflow node. React Flow's `group` nodes are too. */
  drawingOnly?: boolean;
  config?: Record<string, unknown>;
  label?: string;
  retry?: RetryPolicy;
  timeoutMs?: number;
  [key: string]: unknown;
}

/** A node as `@xyflow/react` 12 `toObject()` writes it; `type` is the node type id. */
export interface FlowNode {
  id: string;
  type?: string;
  position: XYPosition;
  data: NodeData;
  measured?: { width?: number; height?: number };
  [key: string]: unknown;
}

/** An edge; the handles are the ports (`null` for `main`). */
export interface FlowEdge {
  id: string;
  source: string;
  target: string;
  sourceHandle?: string | null;
  targetHandle?: string | null;
  label?: unknown;
  data?: Record<string, unknown>;
  [key: string]: unknown;
}

/** The canvas' pan and zoom. */
export interface Viewport {
  x: number;
  y: number;
  zoom: number;
}

/** React Flow's `ReactFlowJsonObject`. */
export interface FlowObject {
  nodes: FlowNode[];
  edges: FlowEdge[];
  viewport?: Viewport;
  [key: string]: unknown;
}

/** A node of a workflow definition. */
export interface NodeSpec {
  id: string;
  type: string;
  label?: string;
  config?: Record<string, unknown>;
  retry?: RetryPolicy;
  timeoutMs?: number;
  position?: XYPosition;
  ui?: Record<string, unknown>;
}

/** An edge of a workflow definition. */
export interface EdgeSpec {
  id?: string;
  source: string;
  sourcePort?: string;
  target: string;
  targetPort?: string;
  ui?: Record<string, unknown>;
}

/** The workflow JSON engines publish and run. */
export interface WorkflowDefinition {
  id: string;
  name: string;
  version?: number;
  description?: string;
  nodes: NodeSpec[];
  edges?: EdgeSpec[];
  tags?: string[];
  template?: boolean;
  tenant?: string;
  ui?: Record<string, unknown>;
}

/** The categories of the palette, in order. */
export type NodeCategory = 'trigger' | 'collection' | 'transform' | 'logic' | 'output';

/** A port of a node type. */
export interface PortSpec {
  name: string;
  label?: string;
}

/** A JSON Schema (as the config panel renders it). */
export type JsonSchema = Record<string, unknown>;

/** A node type as the host's registry describes it. */
export interface NodeDescriptor {
  typeId: string;
  category: NodeCategory;
  label: string;
  icon: string;
  description: string;
  configSchema: JsonSchema;
  inputs: PortSpec[];
  outputs: PortSpec[];
  /** JSON pointer (`*` for every element) where a config names further output ports. */
  outputPortsFrom?: string;
  /** When a node streams its input: always (`""`), or when its config holds `true` at this JSON pointer. */
  streamsInputWhen?: string;
}

/** A node type as the palette shows it. */
export interface PaletteEntry {
  typeId: string;
  label: string;
  icon: string;
  description: string;
  configSchema: JsonSchema;
  defaultConfig: Record<string, unknown>;
  /** The config form's UI schema: each object's fields in declared order (`ui:order`). */
  configUi: Record<string, unknown>;
  inputs: PortSpec[];
  outputs: PortSpec[];
}

/** The node types of one category. */
export interface PaletteGroup {
  category: NodeCategory;
  label: string;
  entries: PaletteEntry[];
}

/** One problem of a drawing, where to show it. */
export interface Diagnostic {
  severity: 'error' | 'warning';
  kind: string;
  message: string;
  nodeId?: string;
  edgeId?: string;
  pointer?: string;
  /** Every node concerned, where it is more than one (the nodes of a cycle). */
  related?: string[];
}

/** A connection React Flow proposes. */
export interface Connection {
  source: string;
  sourceHandle?: string | null;
  target: string;
  targetHandle?: string | null;
}

/** What a form field holds. */
export type FieldKind = 'text' | 'number' | 'date' | 'choice' | 'multiChoice' | 'file' | 'group';

/** One field as a form designer sets it up. */
export interface FieldDraft {
  name: string;
  kind: FieldKind;
  label?: string;
  help?: string;
  required?: boolean;
  /** A regular expression text must match. */
  pattern?: string;
  /** Smallest number, shortest text, fewest choices. */
  min?: number;
  /** Largest number, longest text, most choices. */
  max?: number;
  options?: string[];
  /** Holds personal data. */
  pii?: boolean;
  retentionDays?: number;
  /** Shown only when a field above it in the same group has a value. */
  visibleWhen?: { field: string; equals: unknown };
  /** The fields of a group. */
  fields?: FieldDraft[];
}

/** A form as a form designer sets it up. */
export interface FormDraft {
  id: string;
  title: string;
  retentionDays?: number;
  fields: FieldDraft[];
}

/** A form schema: JSON Schema of the answers and the uiSchema laying them out. */
export interface FormSchema {
  id: string;
  version: number;
  title: string;
  schema: JsonSchema;
  uiSchema?: Record<string, unknown>;
  retentionDays?: number;
}

/** The form a draft makes, and the draft's problems (pointers into the draft). */
export interface BuiltForm {
  form: FormSchema | null;
  diagnostics: Diagnostic[];
}

/** A field the answers fail. */
export interface FieldError {
  pointer: string;
  message: string;
}

let ready: Promise<unknown> | undefined;

/** The editor's model of one palette. Every model decision of the editor goes through it. */
export class Model {
  /** The JSON of the drawing the WebAssembly side holds: a question about the same drawing (every check while a connection is dragged) is not read again. */
  private loadedJson: string | null = null;

  private constructor(private readonly raw: EditorModel) {}

  /** Has the WebAssembly side read `flow`, unless it holds that very drawing. */
  private load(flow: FlowObject): void {
    const json = JSON.stringify(flow);
    if (json === this.loadedJson) return;
    this.loadedJson = null;
    this.raw.load(json);
    this.loadedJson = json;
  }

  /** Loads the WebAssembly module (once) and makes a model of `descriptors`. */
  static async load(descriptors: NodeDescriptor[], wasm?: InitInput | Promise<InitInput>): Promise<Model> {
    ready ??= init(wasm === undefined ? undefined : { module_or_path: wasm });
    await ready;
    return new Model(new EditorModel(JSON.stringify(descriptors)));
  }

  /** The node types by category. */
  palette(): PaletteGroup[] {
    return JSON.parse(this.raw.palette()) as PaletteGroup[];
  }

  /** The palette entry of a node type, or `null`. */
  entry(typeId: string): PaletteEntry | null {
    return JSON.parse(this.raw.entry(typeId)) as PaletteEntry | null;
  }

  /** The output ports (besides `error`) of a node of `typeId` with `config`: the handles to draw; `null` for an unknown type. */
  outputPorts(typeId: string, config: Record<string, unknown>): string[] | null {
    return JSON.parse(this.raw.outputPorts(typeId, JSON.stringify(config))) as string[] | null;
  }

  /** Whether a node of `typeId` with `config` streams its input (one incoming edge, running while the node before it does); `null` for an unknown type. */
  streamsInput(typeId: string, config: Record<string, unknown>): boolean | null {
    return JSON.parse(this.raw.streamsInput(typeId, JSON.stringify(config))) as boolean | null;
  }

  /** The definition drawn in `flow`, with `base`'s id, name and other workflow fields. */
  toDefinition(flow: FlowObject, base: Pick<WorkflowDefinition, 'id' | 'name'> & Partial<WorkflowDefinition>): WorkflowDefinition {
    const withNodes = { nodes: [], ...base };
    this.load(flow);
    return JSON.parse(this.raw.loadedDefinition(JSON.stringify(withNodes))) as WorkflowDefinition;
  }

  /** The React Flow object of a definition; nodes without a position are laid out in columns. */
  fromDefinition(definition: WorkflowDefinition): FlowObject {
    return JSON.parse(this.raw.fromDefinition(JSON.stringify(definition))) as FlowObject;
  }

  /** What publishing would refuse (errors) and what is probably not meant (warnings). */
  diagnose(flow: FlowObject): Diagnostic[] {
    this.load(flow);
    return JSON.parse(this.raw.loadedDiagnostics()) as Diagnostic[];
  }

  /** React Flow's `isValidConnection`: existing nodes and ports, no edge into a trigger, no duplicate, no cycle. */
  isValidConnection(flow: FlowObject, connection: Connection): boolean {
    this.load(flow);
    return this.raw.loadedIsValidConnection(JSON.stringify(connection));
  }

  /** The errors a connection would add (a cycle, a missing port, an edge into a trigger): empty when it is fine. */
  connectionIssues(flow: FlowObject, connection: Connection): Diagnostic[] {
    this.load(flow);
    return JSON.parse(this.raw.loadedConnectionIssues(JSON.stringify(connection))) as Diagnostic[];
  }

  /** The form schema a form designer's draft makes, checked as the server will compile it. */
  buildForm(draft: FormDraft): BuiltForm {
    return JSON.parse(buildForm(JSON.stringify(draft))) as BuiltForm;
  }

  /** The field errors of `data` against `form`, as the server finds them on submission. */
  checkSubmission(form: FormSchema, data: unknown): FieldError[] {
    return JSON.parse(checkSubmission(JSON.stringify(form), JSON.stringify(data))) as FieldError[];
  }

  /** Frees the WebAssembly side. */
  free(): void {
    this.raw.free();
  }
}
