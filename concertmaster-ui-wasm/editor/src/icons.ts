import {
  ArrowRightLeft,
  Bell,
  Box,
  Braces,
  CalendarClock,
  CircleCheck,
  Clock,
  Database,
  EyeOff,
  FileInput,
  Filter,
  GitBranch,
  Inbox,
  Merge,
  Play,
  Send,
  Split,
  UserCheck,
  Webhook,
  Workflow,
} from 'lucide-react';
import type { NodeCategory } from '@concertmaster/ui-wasm';
import type { IconComponent } from './context';

/**
 * The icons of the built-in node types, by the lucide name their descriptors
 * give. Imported one by one, so that a host's bundle carries these and not the
 * whole set; a host adds its own through `<WorkflowEditor icons>`.
 */
export const BUILT_IN_ICONS: Record<string, IconComponent> = {
  'arrow-right-left': ArrowRightLeft,
  bell: Bell,
  braces: Braces,
  'calendar-clock': CalendarClock,
  'check-circle': CircleCheck,
  clock: Clock,
  database: Database,
  'eye-off': EyeOff,
  'file-input': FileInput,
  filter: Filter,
  'git-branch': GitBranch,
  inbox: Inbox,
  merge: Merge,
  play: Play,
  send: Send,
  split: Split,
  'user-check': UserCheck,
  webhook: Webhook,
  workflow: Workflow,
  // ERP connectors name their product; a database is what they are.
  sap: Database,
  netsuite: Database,
};

/** What a node type without a known icon shows: its category's. */
export const CATEGORY_ICONS: Record<NodeCategory, IconComponent> = {
  trigger: Play,
  collection: Inbox,
  transform: Braces,
  logic: GitBranch,
  output: Send,
};

export const FALLBACK_ICON: IconComponent = Box;
