import type { IconComponent } from './context';

/** A node card's head: its type's icon, its label, its type id. */
export function NodeTitle({ icon: Icon, label, typeId }: { icon: IconComponent; label: string; typeId: string }) {
  return (
    <>
      <div className="cm-node-title">
        <span className="cm-node-icon">
          <Icon size={14} aria-hidden="true" />
        </span>
        {label}
      </div>
      <div className="cm-node-type">{typeId}</div>
    </>
  );
}
