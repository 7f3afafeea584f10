import type { Model, NodeCategory, PaletteEntry } from '@concertmaster/ui-wasm';
import type { IconComponent } from './context';
import { CATEGORY_ICONS, FALLBACK_ICON } from './icons';

/** The palette category of each node type of `model`. */
export function categoriesOf(model: Model): Map<string, NodeCategory> {
  return new Map(model.palette().flatMap((g) => g.entries.map((e) => [e.typeId, g.category] as const)));
}

/**
 * The output handles of a node: its type's ports for `config` (`unknown` for
 * a type the model does not know), and the error port every node has.
 */
export function outputHandles(model: Model, typeId: string, config: Record<string, unknown>, unknown: string[] = []): string[] {
  const declared = model.outputPorts(typeId, config) ?? unknown;
  return declared.includes('error') ? declared : [...declared, 'error'];
}

/** A node type's icon: its own by name, else its category's. */
export function iconOf(entry: PaletteEntry | null, icons: Record<string, IconComponent>, category: NodeCategory): IconComponent {
  return (entry && icons[entry.icon]) ?? CATEGORY_ICONS[category] ?? FALLBACK_ICON;
}
