import { useId, useState } from 'react';
import type { Edge, Node } from '@xyflow/react';
import type { Connection, Diagnostic } from '@concertmaster/ui-wasm';

/** The props of {@link ConnectPanel}. */
export interface ConnectPanelProps {
  /** The node connections start from. */
  node: Node;
  /** Its output ports. */
  outputs: string[];
  /** The other nodes, as targets. */
  nodes: Node[];
  /** Every edge of the drawing. */
  edges: Edge[];
  /** What the model would refuse about a connection (empty: it may be drawn). */
  issues: (connection: Connection) => Diagnostic[];
  /** Draws the connection. */
  connect: (connection: Connection) => void;
  /** Removes an edge. */
  remove: (edgeId: string) => void;
  /** A node's name as shown. */
  labelOf: (node: Node) => string;
  /** A node's input ports. */
  inputsOf: (node: Node) => string[];
}

/**
 * Connecting nodes without a mouse: an output of the selected node, a node to
 * connect it to, checked by the model before it is drawn; and its outgoing
 * edges, each removable.
 */
export function ConnectPanel({ node, outputs, nodes, edges, issues, connect, remove, labelOf, inputsOf }: ConnectPanelProps) {
  const ids = useId();
  const targets = nodes.filter((n) => n.id !== node.id);
  const [port, setPort] = useState(outputs[0] ?? 'main');
  const [target, setTarget] = useState('');
  const [input, setInput] = useState('');
  const [refusal, setRefusal] = useState('');
  const outgoing = edges.filter((e) => e.source === node.id);
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const targetNode = byId.get(target);
  const inputs = targetNode ? inputsOf(targetNode) : [];

  const submit = () => {
    if (!target) return;
    // Into the input chosen, or the target's only one.
    const targetHandle = inputs.includes(input) ? input : (inputs[0] ?? 'main');
    const connection: Connection = { source: node.id, sourceHandle: port, target, targetHandle };
    const found = issues(connection).filter((d) => d.kind !== 'cycle');
    if (found.length > 0) {
      setRefusal(found.map((d) => d.message).join(' '));
      return;
    }
    setRefusal('');
    connect(connection);
  };

  return (
    <fieldset className="cm-connect" data-testid="connect-panel">
      <legend>Connections of {labelOf(node)}</legend>
      <div className="cm-connect-row">
        <label htmlFor={`${ids}-port`}>From output</label>
        <select id={`${ids}-port`} value={port} onChange={(e) => setPort(e.target.value)} data-testid="connect-port">
          {outputs.map((p) => (
            <option key={p} value={p}>
              {p}
            </option>
          ))}
        </select>
      </div>
      <div className="cm-connect-row">
        <label htmlFor={`${ids}-target`}>To node</label>
        <select id={`${ids}-target`} value={target} onChange={(e) => setTarget(e.target.value)} data-testid="connect-target">
          <option value="">Choose a node</option>
          {targets.map((n) => (
            <option key={n.id} value={n.id}>
              {labelOf(n)} ({n.id})
            </option>
          ))}
        </select>
      </div>
      {inputs.length > 1 && (
        <div className="cm-connect-row">
          <label htmlFor={`${ids}-input`}>Into input</label>
          <select id={`${ids}-input`} value={input || inputs[0]} onChange={(e) => setInput(e.target.value)} data-testid="connect-input">
            {inputs.map((p) => (
              <option key={p} value={p}>
                {p}
              </option>
            ))}
          </select>
        </div>
      )}
      <button type="button" onClick={submit} disabled={!target} data-testid="connect-button">
        Connect
      </button>
      {refusal && (
        <p className="cm-run-error" role="alert">
          {refusal}
        </p>
      )}
      {outgoing.length > 0 && (
        <ul className="cm-connect-list" aria-label="Outgoing connections">
          {outgoing.map((e) => {
            const to = byId.get(e.target);
            return (
              <li key={e.id}>
                {e.sourceHandle ?? 'main'} → {to ? labelOf(to) : e.target}{' '}
                <button type="button" onClick={() => remove(e.id)} aria-label={`Remove the connection to ${to ? labelOf(to) : e.target}`}>
                  Remove
                </button>
              </li>
            );
          })}
        </ul>
      )}
    </fieldset>
  );
}
