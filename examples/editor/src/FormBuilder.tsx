import { useMemo, useState } from 'react';
import Form from '@rjsf/core';
import type { ErrorSchema, RJSFSchema, UiSchema } from '@rjsf/utils';
import validator from '@rjsf/validator-ajv8';
import type { FieldDraft, FieldKind, FieldError, FormDraft, Model } from '@concertmaster/ui-wasm';

const KINDS: [FieldKind, string][] = [
  ['text', 'Text'],
  ['number', 'Number'],
  ['date', 'Date'],
  ['choice', 'Choice'],
  ['multiChoice', 'Multiple choice'],
  ['file', 'File reference'],
  ['group', 'Group'],
];

type Path = number[];

function update(fields: FieldDraft[], path: Path, change: (f: FieldDraft) => FieldDraft | null): FieldDraft[] {
  const [head, ...rest] = path;
  return fields.flatMap((field, i) => {
    if (i !== head) return [field];
    if (rest.length === 0) {
      const changed = change(field);
      return changed ? [changed] : [];
    }
    return [{ ...field, fields: update(field.fields ?? [], rest, change) }];
  });
}

/** Answers' field errors, as @rjsf shows them under each field. */
function errorSchema(errors: FieldError[]): ErrorSchema {
  const root: Record<string, unknown> = {};
  for (const e of errors) {
    let at = root;
    for (const key of e.pointer.split('/').slice(1)) {
      at[key] ??= {};
      at = at[key] as Record<string, unknown>;
    }
    at.__errors = [...((at.__errors as string[] | undefined) ?? []), e.message];
  }
  return root as ErrorSchema;
}

function FieldRows({ fields, path, onChange }: { fields: FieldDraft[]; path: Path; onChange: (path: Path, change: (f: FieldDraft) => FieldDraft | null) => void }) {
  return (
    <ol className="cm-fields">
      {fields.map((field, i) => {
        const at = [...path, i];
        const id = `field-${at.join('-')}`;
        const set = (patch: Partial<FieldDraft>) => onChange(at, (f) => ({ ...f, ...patch }));
        const number = (value: string) => (value === '' ? undefined : Number(value));
        const siblings = fields.slice(0, i).map((f) => f.name).filter(Boolean);
        return (
          <li key={i} className="cm-field" data-testid={id}>
            <div className="cm-field-row">
              <input placeholder="name" value={field.name} onChange={(e) => set({ name: e.target.value })} data-testid={`${id}-name`} />
              <input placeholder="label" value={field.label ?? ''} onChange={(e) => set({ label: e.target.value })} data-testid={`${id}-label`} />
              <select value={field.kind} onChange={(e) => set({ kind: e.target.value as FieldKind })} data-testid={`${id}-kind`}>
                {KINDS.map(([kind, label]) => (
                  <option key={kind} value={kind}>
                    {label}
                  </option>
                ))}
              </select>
              <label>
                <input type="checkbox" checked={field.required ?? false} onChange={(e) => set({ required: e.target.checked })} data-testid={`${id}-required`} /> required
              </label>
              <label>
                <input type="checkbox" checked={field.pii ?? false} onChange={(e) => set({ pii: e.target.checked })} data-testid={`${id}-pii`} /> personal data
              </label>
              <button onClick={() => onChange(at, () => null)} title="Remove the field">
                ✕
              </button>
            </div>
            <div className="cm-field-row">
              {field.kind === 'text' && (
                <input placeholder="pattern (regular expression)" value={field.pattern ?? ''} onChange={(e) => set({ pattern: e.target.value || undefined })} data-testid={`${id}-pattern`} />
              )}
              {['text', 'number', 'multiChoice'].includes(field.kind) && (
                <>
                  <input type="number" placeholder="min" value={field.min ?? ''} onChange={(e) => set({ min: number(e.target.value) })} data-testid={`${id}-min`} />
                  <input type="number" placeholder="max" value={field.max ?? ''} onChange={(e) => set({ max: number(e.target.value) })} data-testid={`${id}-max`} />
                </>
              )}
              {(field.kind === 'choice' || field.kind === 'multiChoice') && (
                <input
                  placeholder="options, comma separated"
                  value={(field.options ?? []).join(', ')}
                  onChange={(e) => set({ options: e.target.value.split(',').map((o) => o.trim()).filter(Boolean) })}
                  data-testid={`${id}-options`}
                />
              )}
              <select
                value={field.visibleWhen?.field ?? ''}
                onChange={(e) => set({ visibleWhen: e.target.value ? { field: e.target.value, equals: field.visibleWhen?.equals ?? '' } : undefined })}
                data-testid={`${id}-when-field`}
              >
                <option value="">always shown</option>
                {siblings.map((name) => (
                  <option key={name} value={name}>
                    shown when {name} =
                  </option>
                ))}
              </select>
              {field.visibleWhen && (
                <input
                  placeholder="value"
                  value={String(field.visibleWhen.equals ?? '')}
                  onChange={(e) => set({ visibleWhen: { field: field.visibleWhen?.field ?? '', equals: e.target.value } })}
                  data-testid={`${id}-when-equals`}
                />
              )}
            </div>
            {field.kind === 'group' && (
              <div className="cm-group">
                <FieldRows fields={field.fields ?? []} path={at} onChange={onChange} />
                <button onClick={() => set({ fields: [...(field.fields ?? []), { name: '', kind: 'text' }] })} data-testid={`${id}-add`}>
                  Add field to group
                </button>
              </div>
            )}
          </li>
        );
      })}
    </ol>
  );
}

/** Designs a form: fields in, form schema out (built and checked by the model), with a live preview. */
export function FormBuilder({ model }: { model: Model }) {
  const [draft, setDraft] = useState<FormDraft>({ id: 'supplier-questionnaire', title: 'Supplier questionnaire', fields: [] });
  const [answers, setAnswers] = useState<Record<string, unknown>>({});
  const [answerErrors, setAnswerErrors] = useState<FieldError[]>([]);
  const [submitted, setSubmitted] = useState(false);
  const built = useMemo(() => model.buildForm(draft), [model, draft]);

  const change = (path: Path, fn: (f: FieldDraft) => FieldDraft | null) => setDraft((d) => ({ ...d, fields: update(d.fields, path, fn) }));

  return (
    <div className="cm-form-builder" data-testid="form-builder">
      <section className="cm-form-design">
        <h2>Form</h2>
        <label>
          id <input value={draft.id} onChange={(e) => setDraft({ ...draft, id: e.target.value })} />
        </label>
        <label>
          title <input value={draft.title} onChange={(e) => setDraft({ ...draft, title: e.target.value })} />
        </label>
        <FieldRows fields={draft.fields} path={[]} onChange={change} />
        <button onClick={() => setDraft({ ...draft, fields: [...draft.fields, { name: '', kind: 'text' }] })} data-testid="add-field">
          Add field
        </button>
        <ul className="cm-form-problems" data-testid="form-diagnostics">
          {built.diagnostics.map((d, i) => (
            <li key={i} className="cm-error" data-pointer={d.pointer}>
              <code>{d.pointer}</code> {d.message}
            </li>
          ))}
        </ul>
        <h3>Form schema</h3>
        <textarea readOnly rows={14} value={built.form ? JSON.stringify(built.form, null, 2) : ''} data-testid="form-schema" spellCheck={false} />
      </section>
      <section className="cm-form-preview" data-testid="form-preview">
        <h2>Preview</h2>
        {built.form && (
          <Form
            schema={built.form.schema as RJSFSchema}
            uiSchema={(built.form.uiSchema ?? {}) as UiSchema}
            formData={answers}
            validator={validator}
            noValidate
            noHtml5Validate
            showErrorList={false}
            extraErrors={errorSchema(answerErrors)}
            onChange={(e) => setAnswers((e.formData ?? {}) as Record<string, unknown>)}
            onSubmit={(e) => {
              // The server's own check, run here by the model.
              setAnswerErrors(built.form ? model.checkSubmission(built.form, e.formData ?? {}) : []);
              setSubmitted(true);
            }}
          />
        )}
        {submitted && (
          <p data-testid="preview-result">{answerErrors.length === 0 ? 'The answers are valid.' : `${answerErrors.length} field(s) to fix.`}</p>
        )}
      </section>
    </div>
  );
}
