import { useEffect, useState } from 'react';
import { FormBuilder, RunView, WorkflowEditor, type RunDetail, type RunRecord } from '@concertmaster/editor';
import { Model, type BuiltForm, type Diagnostic, type FormDraft, type WorkflowDefinition } from '@concertmaster/ui-wasm';
import { Service, asDiagnostics, type WorkflowSummary } from './service';

const START: WorkflowDefinition = { id: 'supplier-export', name: 'Supplier export', nodes: [], edges: [] };

/**
 * The example editor: the package's <WorkflowEditor>, controlled, beside the
 * workflow JSON it exports and imports, and the form builder. Connected to
 * the example service with an API key, it edits the service's node types,
 * opens, validates and publishes its workflows, and shows their runs in
 * <RunView>.
 */
export function App({ model: builtIn }: { model: Model }) {
  const [model, setModel] = useState(builtIn);
  const [definition, setDefinition] = useState<WorkflowDefinition>(START);
  const [diagnostics, setDiagnostics] = useState<Diagnostic[]>([]);
  const [definitionText, setDefinitionText] = useState('');
  const [message, setMessage] = useState<{ text: string; error: boolean } | null>(null);
  const [mode, setMode] = useState<'workflow' | 'runs' | 'form'>('workflow');
  const [key, setKey] = useState(() => sessionStorage.getItem('concertmaster-key') ?? '');
  const [service, setService] = useState<Service | null>(null);
  const [workflows, setWorkflows] = useState<WorkflowSummary[]>([]);
  const [runs, setRuns] = useState<RunRecord[]>([]);
  const [run, setRun] = useState<{ detail: RunDetail; definition: WorkflowDefinition } | null>(null);
  const [formDraft, setFormDraft] = useState<FormDraft>({ id: 'supplier-questionnaire', title: 'Supplier questionnaire', fields: [] });
  const [builtForm, setBuiltForm] = useState<BuiltForm | null>(null);

  const say = (text: string, error = false) => setMessage({ text, error });
  const failed = (err: unknown) => say(String(err instanceof Error ? err.message : err), true);

  const connect = async () => {
    const next = new Service(key.trim());
    try {
      const types = await next.nodeTypes();
      setModel(await Model.load(types));
      setService(next);
      setWorkflows(await next.workflows());
      sessionStorage.setItem('concertmaster-key', key.trim());
      say(`Connected: ${types.length} node types`);
    } catch (err) {
      failed(err);
    }
  };

  const open = async (id: string) => {
    if (!service || !id) return;
    try {
      setDefinition(await service.workflow(id));
      setRuns(await service.runs(id));
      say(`Opened ${id}`);
    } catch (err) {
      failed(err);
    }
  };

  const validate = async () => {
    if (!service) return;
    try {
      const found = await service.validate(definition);
      setDiagnostics(asDiagnostics(found.issues));
      say(found.valid ? 'The service would publish it' : `The service found ${found.issues.length} problem(s)`, !found.valid);
    } catch (err) {
      failed(err);
    }
  };

  const publish = async () => {
    if (!service) return;
    try {
      const published = await service.publish(definition);
      setDefinition({ ...definition, version: published.version });
      setWorkflows(await service.workflows());
      say(`Published ${published.id} version ${published.version}`);
    } catch (err) {
      failed(err);
    }
  };

  const openRun = async (id: string) => {
    if (!service) return;
    try {
      const detail = await service.run(id);
      setRun({ detail, definition: await service.workflow(detail.run.workflowId, detail.run.workflowVersion) });
    } catch (err) {
      failed(err);
    }
  };

  // The run shown follows the run while it is not over.
  useEffect(() => {
    if (!service || !run || ['succeeded', 'failed', 'cancelled'].includes(run.detail.run.status)) return;
    const timer = setTimeout(() => void openRun(run.detail.run.id), 1000);
    return () => clearTimeout(timer);
  });

  const importDefinition = () => {
    try {
      setDefinition(JSON.parse(definitionText) as WorkflowDefinition);
      setMessage(null);
    } catch (err) {
      failed(err);
    }
  };

  return (
    <>
      <header className="ex-bar">
        <nav className="ex-tabs" aria-label="Views">
          {(['workflow', 'runs', 'form'] as const).map((m) => (
            <button key={m} className={mode === m ? 'ex-active' : ''} onClick={() => setMode(m)} data-testid={`tab-${m}`} aria-pressed={mode === m}>
              {m === 'workflow' ? 'Workflow' : m === 'runs' ? 'Runs' : 'Form builder'}
            </button>
          ))}
        </nav>
        <form
          className="ex-connect"
          onSubmit={(e) => {
            e.preventDefault();
            void connect();
          }}
        >
          <label htmlFor="ex-key">API key</label>
          <input id="ex-key" type="password" value={key} onChange={(e) => setKey(e.target.value)} autoComplete="off" data-testid="api-key" />
          <button type="submit" data-testid="connect">
            {service ? 'Reconnect' : 'Connect to the service'}
          </button>
        </form>
      </header>
      {message && (
        <p className={message.error ? 'ex-message ex-error' : 'ex-message'} role={message.error ? 'alert' : 'status'} data-testid="message">
          {message.text}
        </p>
      )}
      {mode === 'form' && (
        <div className="ex-forms">
          <FormBuilder
            model={model}
            value={formDraft}
            onChange={(draft, built) => {
              setFormDraft(draft);
              setBuiltForm(built);
            }}
          />
          <section className="ex-io" aria-label="Form schema">
            <textarea
              readOnly
              rows={8}
              value={builtForm?.form ? JSON.stringify(builtForm.form, null, 2) : ''}
              data-testid="form-schema"
              spellCheck={false}
              aria-label="Form schema (JSON)"
            />
          </section>
        </div>
      )}
      {mode === 'runs' && (
        <div className="ex-runs">
          <section aria-label="Runs" className="ex-run-list">
            <h2>Runs of {definition.id}</h2>
            {!service && <p>Connect to the service to see runs.</p>}
            {service && (
              <button onClick={() => void service.runs(definition.id).then(setRuns, failed)} data-testid="refresh-runs">
                Refresh
              </button>
            )}
            <ul data-testid="runs">
              {runs.map((r) => (
                <li key={r.id}>
                  <button onClick={() => void openRun(r.id)} data-testid={`run-${r.id}`}>
                    {r.status} · v{r.workflowVersion} · {new Date(r.createdAt).toLocaleString()}
                  </button>
                </li>
              ))}
            </ul>
          </section>
          {run && <RunView model={model} definition={run.definition} run={run.detail} />}
        </div>
      )}
      {mode === 'workflow' && (
        <div className="ex-workflow">
          <WorkflowEditor
            key={model === builtIn ? 'built-in' : 'service'}
            model={model}
            value={definition}
            onChange={(next, found) => {
              setDefinition(next);
              setDiagnostics(found);
            }}
          />
          <section className="ex-io" aria-label="Workflow">
            {service && (
              <>
                <label htmlFor="ex-open">Open</label>
                <select id="ex-open" value="" onChange={(e) => void open(e.target.value)} data-testid="open-workflow">
                  <option value="">a published workflow</option>
                  {workflows.map((w) => (
                    <option key={w.id} value={w.id}>
                      {w.name} ({w.id}, v{w.version})
                    </option>
                  ))}
                </select>
                <button onClick={() => void validate()} data-testid="validate">
                  Validate
                </button>
                <button onClick={() => void publish()} data-testid="publish">
                  Publish
                </button>
              </>
            )}
            <label>
              id <input value={definition.id} onChange={(e) => setDefinition({ ...definition, id: e.target.value })} data-testid="workflow-id" />
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
