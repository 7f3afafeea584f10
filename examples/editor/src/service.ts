import type { Diagnostic, NodeDescriptor, WorkflowDefinition } from '@concertmaster/ui-wasm';
import type { RunDetail, RunRecord } from '@concertmaster/editor';

/** A workflow as the service lists it. */
export interface WorkflowSummary {
  id: string;
  name: string;
  version: number;
}

/** What publishing found wrong, as the service says it. */
export interface ServiceIssue {
  kind: string;
  node?: string;
  edge?: string;
  pointer?: string;
  message: string;
}

/** The example service's API (`/api`, same origin), with an API key. */
export class Service {
  constructor(private readonly key: string) {}

  private async call<T>(path: string, init: RequestInit = {}): Promise<T> {
    const response = await fetch(`/api${path}`, {
      ...init,
      headers: { authorization: `Bearer ${this.key}`, 'content-type': 'application/json', ...init.headers },
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const message = (body as { error?: { message?: string } }).error?.message ?? JSON.stringify(body);
      throw new Error(`${init.method ?? 'GET'} /api${path}: ${response.status} ${message}`);
    }
    return body as T;
  }

  /** The node types of the service's registry. */
  nodeTypes(): Promise<NodeDescriptor[]> {
    return this.call('/node-types');
  }

  async workflows(): Promise<WorkflowSummary[]> {
    return (await this.call<{ workflows: WorkflowSummary[] }>('/workflows')).workflows;
  }

  workflow(id: string, version?: number): Promise<WorkflowDefinition> {
    return this.call(`/workflows/${encodeURIComponent(id)}${version ? `?version=${version}` : ''}`);
  }

  validate(definition: WorkflowDefinition): Promise<{ valid: boolean; issues: ServiceIssue[] }> {
    return this.call('/workflows/validate', { method: 'POST', body: JSON.stringify(definition) });
  }

  publish(definition: WorkflowDefinition): Promise<WorkflowSummary> {
    return this.call('/workflows', { method: 'POST', body: JSON.stringify(definition) });
  }

  async runs(workflow?: string): Promise<RunRecord[]> {
    const query = workflow ? `?workflow=${encodeURIComponent(workflow)}` : '';
    return (await this.call<{ runs: RunRecord[] }>(`/runs${query}`)).runs;
  }

  start(workflow: string): Promise<{ runId: string }> {
    return this.call(`/workflows/${encodeURIComponent(workflow)}/runs`, { method: 'POST', body: '{}' });
  }

  /** A run with its nodes; a role that may not read items gets the timeline, shown without them. */
  async run(id: string): Promise<RunDetail> {
    const detail = await this.call<{
      run: RunRecord;
      nodes?: RunDetail['nodes'];
      timeline?: { node: string; type: string; status: RunDetail['nodes'][number]['status']; attempt: number; startedAt?: string; endedAt?: string; error?: string }[];
    }>(`/runs/${encodeURIComponent(id)}`);
    const nodes =
      detail.nodes ??
      (detail.timeline ?? []).map((t) => ({
        nodeId: t.node,
        nodeType: t.type,
        status: t.status,
        attempt: t.attempt,
        startedAt: t.startedAt,
        endedAt: t.endedAt,
        error: t.error ? { message: t.error } : undefined,
      }));
    return { run: detail.run, nodes };
  }
}

/** The service's issues as the editor's diagnostics. */
export function asDiagnostics(issues: ServiceIssue[]): Diagnostic[] {
  return issues.map((i) => ({ severity: 'error', kind: i.kind, message: i.message, nodeId: i.node, edgeId: i.edge, pointer: i.pointer }));
}
