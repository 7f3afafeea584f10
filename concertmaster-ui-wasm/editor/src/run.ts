/** The JSON the engine gives for a run (`Engine::run`, `RunDetail`), as RunView reads it. */

/** Where a run is. */
export type RunStatus = 'pending' | 'running' | 'waiting' | 'succeeded' | 'failed' | 'cancelled' | 'paused';

/** Where a node of a run is. */
export type NodeStatus = 'running' | 'waiting' | 'succeeded' | 'failed' | 'skipped' | 'cancelled';

/** Items by port name. */
export type Ports = Record<string, Record<string, unknown>[]>;

/** A node's failure. */
export interface NodeFailure {
  message: string;
  retryable?: boolean;
  details?: unknown;
}

/** What a waiting node waits for: an event by its key, a time, or both. */
export interface NodeWait {
  key: string;
  until?: string;
  state?: unknown;
}

/** One node's record in a run. */
export interface NodeExecution {
  nodeId: string;
  nodeType: string;
  status: NodeStatus;
  attempt: number;
  input?: Ports;
  output?: Ports;
  error?: NodeFailure;
  wait?: NodeWait;
  startedAt?: string;
  endedAt?: string;
}

/** A run. */
export interface RunRecord {
  id: string;
  workflowId: string;
  workflowVersion: number;
  status: RunStatus;
  createdAt: string;
  endedAt?: string;
  error?: string;
}

/** A run with the record of each node that started, was skipped or was cancelled. */
export interface RunDetail {
  run: RunRecord;
  nodes: NodeExecution[];
}
