import { useState } from 'react';
import { WorkflowEditor } from '@concertmaster/editor';
import type { Diagnostic, Model, WorkflowDefinition } from '@concertmaster/ui-wasm';
import { FormBuilder } from './FormBuilder';

const START: WorkflowDefinition = { id: 'supplier-export', name: 'Supplier export', nodes: [], edges: [] };

/**
 * The example editor: the package's <WorkflowEditor>, controlled, beside a
 * JSON view of what it edits (export, import) and the form builder.
 */
export function App({ model }: { model: Model }) {
  const [definition, setDefinition] = useState<WorkflowDefinition>(START);
  const [diagnostics, setDiagnostics] = useState<Diagnostic[]>([]);
  const [definitionText, setDefinitionText] = useState('');
  const [importError, setImportError] = useState<string | null>(null);
  const [mode, setMode] = useState<'workflow' | 'form'>('workflow');

  const importDefinition = () => {
    try {
      setDefinition(JSON.parse(definitionText) as WorkflowDefinition);
      setImportError(null);
    } catch (err) {
      setImportError(String(err));
    }
  };

  return (
    <>
      <nav className="ex-tabs" aria-label="Views">
        <button className={mode === 'workflow' ? 'ex-active' : ''} onClick={() => setMode('workflow')} data-testid="tab-workflow">
          Workflow
        </button>
        <button className={mode === 'form' ? 'ex-active' : ''} onClick={() => setMode('form')} data-testid="tab-form">
          Form builder
        </button>
      </nav>
      {mode === 'form' ? (
        <FormBuilder model={model} />
      ) : (
        <div className="ex-workflow">
          <WorkflowEditor
            model={model}
            value={definition}
            onChange={(next, found) => {
              setDefinition(next);
              setDiagnostics(found);
            }}
          />
          <section className="ex-io" aria-label="Workflow JSON">
            <label>
              id{' '}
              <input value={definition.id} onChange={(e) => setDefinition({ ...definition, id: e.target.value })} data-testid="workflow-id" />
            </label>
            <label>
              name <input value={definition.name} onChange={(e) => setDefinition({ ...definition, name: e.target.value })} />
            </label>
            <span className="ex-count">{diagnostics.filter((d) => d.severity === 'error').length} errors</span>
            <button onClick={() => setDefinitionText(JSON.stringify(definition, null, 2))} data-testid="export">
              Export
            </button>
            <button onClick={importDefinition} data-testid="import">
              Import
            </button>
            {importError && <p className="ex-error">{importError}</p>}
            <textarea
              value={definitionText}
              onChange={(e) => setDefinitionText(e.target.value)}
              rows={6}
              data-testid="definition"
              spellCheck={false}
              aria-label="Workflow definition (JSON)"
            />
          </section>
        </div>
      )}
    </>
  );
}
