import { useCallback, useRef, useState, type MutableRefObject } from 'react';
import type { Edge, Node } from '@xyflow/react';

/** The drawing at one point of its history. */
export interface Snapshot {
  nodes: Node[];
  edges: Edge[];
}

/** Most steps kept to undo. */
const DEPTH = 100;

/**
 * Undo and redo over the changes of a workflow: `changed` is told each step
 * (each change of the definition; a drag once, when it ends), `undo` and
 * `redo` put an earlier or later drawing back through `restore`.
 */
export function useHistory(restore: (snapshot: Snapshot) => void) {
  const past = useRef<Snapshot[]>([]);
  const future = useRef<Snapshot[]>([]);
  const current = useRef<Snapshot | null>(null);
  const restoring = useRef(false);
  const [, setVersion] = useState(0);
  const bump = () => setVersion((v) => v + 1);

  const changed = useCallback((now: Snapshot) => {
    if (restoring.current) {
      restoring.current = false;
    } else if (current.current) {
      past.current.push(current.current);
      if (past.current.length > DEPTH) past.current.shift();
      future.current = [];
    }
    current.current = now;
    bump();
  }, []);

  const step = useCallback(
    (from: MutableRefObject<Snapshot[]>, to: MutableRefObject<Snapshot[]>) => {
      const target = from.current.pop();
      if (!target || !current.current) return;
      to.current.push(current.current);
      restoring.current = true;
      current.current = target;
      restore(target);
      bump();
    },
    [restore],
  );
  const undo = useCallback(() => step(past, future), [step]);
  const redo = useCallback(() => step(future, past), [step]);

  /** Forgets the history: another workflow was loaded. */
  const reset = useCallback(() => {
    past.current = [];
    future.current = [];
    current.current = null;
    restoring.current = false;
    bump();
  }, []);

  return { changed, undo, redo, reset, canUndo: past.current.length > 0, canRedo: future.current.length > 0 };
}
