import { useId, useMemo, useState, type CSSProperties, type ReactElement } from 'react';
import {
  DndContext,
  KeyboardSensor,
  PointerSensor,
  closestCenter,
  useSensor,
  useSensors,
  type DragEndEvent,
} from '@dnd-kit/core';
import { SortableContext, arrayMove, sortableKeyboardCoordinates, useSortable, verticalListSortingStrategy } from '@dnd-kit/sortable';
import { CSS } from '@dnd-kit/utilities';
import Form from '@rjsf/core';
import type { ErrorSchema, RJSFSchema, UiSchema } from '@rjsf/utils';
import validator from '@rjsf/validator-ajv8';
import type { BuiltForm, FieldDraft, FieldError, FieldKind, FormDraft, Model } from '@concertmaster/ui-wasm';
import type { Theme } from './WorkflowEditor';
import { CONFIG_WIDGETS } from './widgets';

/** The props of {@link FormBuilder}. */
export interface FormBuilderProps {
  /** The graph model: it builds the form schema and checks answers as the server does. */
  model: Model;
  /** The form designed, for a controlled builder: pass back what `onChange` gave. */
  value?: FormDraft;
  /** The form an uncontrolled builder starts with. */
  defaultValue?: FormDraft;
  /** Every change: the design, and the form schema it builds (or why it cannot). */
  onChange?: (draft: FormDraft, built: BuiltForm) => void;
  /** Light, dark, or as the user's system says (the default). */
  theme?: Theme;
  /** A class for the root element. */
  className?: string;
  /** Styles for the root element. */
  style?: CSSProperties;
}

const KINDS: [FieldKind, string][] = [
  ['text', 'Text'],
  ['number', 'Number'],
  ['date', 'Date'],
  ['choice', 'Choice'],
  ['multiChoice', 'Multiple choice'],
  ['file', 'File reference'],
  ['group', 'Group'],
];

const EMPTY: FormDraft = { id: 'form', title: 'Untitled form', fields: [] };

type Path = number[];
type Change = (path: Path, change: (fields: FieldDraft[], index: number) => FieldDraft[]) => void;

/** `fields` with the list holding `path`'s last step changed by `change`. */
function changeAt(fields: FieldDraft[], path: Path, change: (list: FieldDraft[], index: number) => FieldDraft[]): FieldDraft[] {
  const [head, ...rest] = path;
  if (rest.length === 0) return change(fields, head);
  return fields.map((f, i) => (i === head ? { ...f, fields: changeAt(f.fields ?? [], rest, change) } : f));
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

/** The sortable ids of a list: a field's name, or its place while it has none. */
function sortIds(fields: FieldDraft[]): string[] {
  const seen = new Set<string>();
  return fields.map((f, i) => {
    const id = f.name && !seen.has(f.name) ? `field:${f.name}` : `place:${i}`;
    seen.add(f.name);
    return id;
  });
}

function FieldList({ fields, path, change }: { fields: FieldDraft[]; path: Path; change: Change }) {
  const sensors = useSensors(useSensor(PointerSensor, { activationConstraint: { distance: 5 } }), useSensor(KeyboardSensor, { coordinateGetter: sortableKeyboardCoordinates }));
  const ids = sortIds(fields);
  const onDragEnd = ({ active, over }: DragEndEvent) => {
    if (!over || active.id === over.id) return;
    const from = ids.indexOf(String(active.id));
    const to = ids.indexOf(String(over.id));
    if (from < 0 || to < 0) return;
    change([...path, from], (list) => arrayMove(list, from, to));
  };
  return (
    <DndContext sensors={sensors} collisionDetection={closestCenter} onDragEnd={onDragEnd}>
      <SortableContext items={ids} strategy={verticalListSortingStrategy}>
        <ol className="cm-fields">
          {fields.map((field, i) => (
            <SortableField key={ids[i]} sortId={ids[i]} field={field} path={[...path, i]} count={fields.length} siblings={fields.slice(0, i)} change={change} />
          ))}
        </ol>
      </SortableContext>
    </DndContext>
  );
}

function SortableField({
  sortId,
  field,
  path,
  count,
  siblings,
  change,
}: {
  sortId: string;
  field: FieldDraft;
  path: Path;
  count: number;
  siblings: FieldDraft[];
  change: Change;
}) {
  const { attributes, listeners, setNodeRef, setActivatorNodeRef, transform, transition } = useSortable({ id: sortId });
  const uid = useId();
  const testId = `field-${path.join('-')}`;
  const index = path[path.length - 1];
  const set = (patch: Partial<FieldDraft>) => change(path, (list, i) => list.map((f, k) => (k === i ? { ...f, ...patch } : f)));
  const move = (by: number) => change(path, (list, i) => arrayMove(list, i, i + by));
  const number = (text: string) => (text === '' ? undefined : Number(text));
  const named = field.label || field.name || `field ${index + 1}`;
  const input = (key: string, label: string, control: ReactElement) => (
    <span className="cm-field-input">
      <label htmlFor={`${uid}-${key}`}>{label}</label>
      {control}
    </span>
  );
  return (
    <li ref={setNodeRef} style={{ transform: CSS.Transform.toString(transform), transition }} className="cm-field" data-testid={testId}>
      <div className="cm-field-row">
        <button
          type="button"
          ref={setActivatorNodeRef}
          className="cm-drag-handle"
          aria-label={`Move ${named}: Space to pick it up, arrow keys to move it, Space to drop it`}
          data-testid={`${testId}-handle`}
          {...attributes}
          {...listeners}
        >
          ⠿
        </button>
        {input('name', 'Name', <input id={`${uid}-name`} value={field.name} onChange={(e) => set({ name: e.target.value })} data-testid={`${testId}-name`} />)}
        {input('label', 'Label', <input id={`${uid}-label`} value={field.label ?? ''} onChange={(e) => set({ label: e.target.value })} data-testid={`${testId}-label`} />)}
        {input(
          'kind',
          'Kind',
          <select id={`${uid}-kind`} value={field.kind} onChange={(e) => set({ kind: e.target.value as FieldKind })} data-testid={`${testId}-kind`}>
            {KINDS.map(([kind, label]) => (
              <option key={kind} value={kind}>
                {label}
              </option>
            ))}
          </select>,
        )}
        <label>
          <input type="checkbox" checked={field.required ?? false} onChange={(e) => set({ required: e.target.checked })} data-testid={`${testId}-required`} /> Required
        </label>
        <label>
          <input type="checkbox" checked={field.pii ?? false} onChange={(e) => set({ pii: e.target.checked })} data-testid={`${testId}-pii`} /> Personal data
        </label>
        <button type="button" onClick={() => move(-1)} disabled={index === 0} aria-label={`Move ${named} up`} data-testid={`${testId}-up`}>
          ↑
        </button>
        <button type="button" onClick={() => move(1)} disabled={index === count - 1} aria-label={`Move ${named} down`} data-testid={`${testId}-down`}>
          ↓
        </button>
        <button type="button" onClick={() => change(path, (list, i) => list.filter((_, k) => k !== i))} aria-label={`Remove ${named}`}>
          ✕
        </button>
      </div>
      <div className="cm-field-row">
        {field.kind === 'text' &&
          input('pattern', 'Pattern', <input id={`${uid}-pattern`} value={field.pattern ?? ''} onChange={(e) => set({ pattern: e.target.value || undefined })} data-testid={`${testId}-pattern`} />)}
        {['text', 'number', 'multiChoice'].includes(field.kind) && (
          <>
            {input('min', 'At least', <input id={`${uid}-min`} type="number" value={field.min ?? ''} onChange={(e) => set({ min: number(e.target.value) })} data-testid={`${testId}-min`} />)}
            {input('max', 'At most', <input id={`${uid}-max`} type="number" value={field.max ?? ''} onChange={(e) => set({ max: number(e.target.value) })} data-testid={`${testId}-max`} />)}
          </>
        )}
        {(field.kind === 'choice' || field.kind === 'multiChoice') &&
          input(
            'options',
            'Options (comma separated)',
            <input
              id={`${uid}-options`}
              value={(field.options ?? []).join(', ')}
              onChange={(e) => set({ options: e.target.value.split(',').map((o) => o.trim()).filter(Boolean) })}
              data-testid={`${testId}-options`}
            />,
          )}
        {input(
          'when',
          'Shown',
          <select
            id={`${uid}-when`}
            value={field.visibleWhen?.field ?? ''}
            onChange={(e) => set({ visibleWhen: e.target.value ? { field: e.target.value, equals: field.visibleWhen?.equals ?? '' } : undefined })}
            data-testid={`${testId}-when-field`}
          >
            <option value="">always</option>
            {siblings
              .map((f) => f.name)
              .filter(Boolean)
              .map((name) => (
                <option key={name} value={name}>
                  when {name} is
                </option>
              ))}
          </select>,
        )}
        {field.visibleWhen &&
          input(
            'equals',
            'this value',
            <input
              id={`${uid}-equals`}
              value={String(field.visibleWhen.equals ?? '')}
              onChange={(e) => set({ visibleWhen: { field: field.visibleWhen?.field ?? '', equals: e.target.value } })}
              data-testid={`${testId}-when-equals`}
            />,
          )}
      </div>
      {field.kind === 'group' && (
        <div className="cm-group">
          <FieldList fields={field.fields ?? []} path={path} change={change} />
          <button type="button" onClick={() => set({ fields: [...(field.fields ?? []), { name: '', kind: 'text' }] })} data-testid={`${testId}-add`}>
            Add a field to {named}
          </button>
        </div>
      )}
    </li>
  );
}

/**
 * The form builder: fields designed (reordered by dragging their handle, or
 * from the keyboard), the form schema the model builds from them with what
 * is wrong, and a preview that checks answers as the server will.
 */
export function FormBuilder({ model, value, defaultValue, onChange, theme = 'system', className, style }: FormBuilderProps) {
  const [own, setOwn] = useState<FormDraft>(value ?? defaultValue ?? EMPTY);
  const draft = value ?? own;
  const built = useMemo(() => model.buildForm(draft), [model, draft]);
  const [answers, setAnswers] = useState<Record<string, unknown>>({});
  const [answerErrors, setAnswerErrors] = useState<FieldError[]>([]);
  const [checked, setChecked] = useState(false);
  const ids = useId();

  const update = (next: FormDraft) => {
    if (value === undefined) setOwn(next);
    onChange?.(next, model.buildForm(next));
  };
  const change: Change = (path, fn) => update({ ...draft, fields: changeAt(draft.fields, path, fn) });

  const rootClass = ['cm-editor-root', 'cm-form-root', className].filter(Boolean).join(' ');
  return (
    <div className={rootClass} data-theme={theme} style={style} data-testid="form-builder">
      <section className="cm-form-design" aria-labelledby={`${ids}-design`}>
        <h2 id={`${ids}-design`}>Form</h2>
        <div className="cm-field-row">
          <label htmlFor={`${ids}-id`}>Id</label>
          <input id={`${ids}-id`} value={draft.id} onChange={(e) => update({ ...draft, id: e.target.value })} />
          <label htmlFor={`${ids}-title`}>Title</label>
          <input id={`${ids}-title`} value={draft.title} onChange={(e) => update({ ...draft, title: e.target.value })} />
        </div>
        <FieldList fields={draft.fields} path={[]} change={change} />
        <button type="button" onClick={() => update({ ...draft, fields: [...draft.fields, { name: '', kind: 'text' }] })} data-testid="add-field">
          Add a field
        </button>
        <ul className="cm-form-problems" data-testid="form-diagnostics" aria-label="What is wrong with the form">
          {built.diagnostics.map((d, i) => (
            <li key={i} className="cm-error" data-pointer={d.pointer}>
              <code>{d.pointer}</code> {d.message}
            </li>
          ))}
        </ul>
      </section>
      <section className="cm-form-preview" aria-labelledby={`${ids}-preview`} data-testid="form-preview">
        <h2 id={`${ids}-preview`}>Preview</h2>
        {built.form && (
          <Form
            schema={built.form.schema as RJSFSchema}
            uiSchema={(built.form.uiSchema ?? {}) as UiSchema}
            formData={answers}
            validator={validator}
            widgets={CONFIG_WIDGETS}
            noValidate
            noHtml5Validate
            showErrorList={false}
            extraErrors={errorSchema(answerErrors)}
            onChange={(e) => setAnswers((e.formData ?? {}) as Record<string, unknown>)}
            onSubmit={(e) => {
              // The server's own check, run here by the model.
              setAnswerErrors(built.form ? model.checkSubmission(built.form, e.formData ?? {}) : []);
              setChecked(true);
            }}
          />
        )}
        {checked && (
          <p role="status" data-testid="preview-result">
            {answerErrors.length === 0 ? 'The answers are valid.' : `${answerErrors.length} field(s) to fix.`}
          </p>
        )}
      </section>
    </div>
  );
}
