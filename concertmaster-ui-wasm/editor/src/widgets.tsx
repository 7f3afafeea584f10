import { getDefaultRegistry } from '@rjsf/core';
import type { RegistryWidgetsType, WidgetProps } from '@rjsf/utils';

const defaults = getDefaultRegistry().widgets;
const CoreSelect = defaults.SelectWidget;

/**
 * The config panel's select. react-jsonschema-form draws the choice between a
 * schema's alternatives (`oneOf`, `anyOf`) as a select whose label it hides;
 * a screen reader still needs its name, so it gets one, visually hidden.
 */
function SelectWidget(props: WidgetProps) {
  if (!props.hideLabel) return <CoreSelect {...props} />;
  const named = props.label && props.label !== 'root' ? props.label : 'Which fields to fill';
  return (
    <>
      <label className="cm-visually-hidden" htmlFor={props.id}>
        {named}
      </label>
      <CoreSelect {...props} />
    </>
  );
}

/** The widgets of the config panel: react-jsonschema-form's, with a named select. */
export const CONFIG_WIDGETS: RegistryWidgetsType = { SelectWidget };
