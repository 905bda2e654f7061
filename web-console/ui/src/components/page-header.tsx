import type { ComponentChildren } from 'preact';

export function PageHeader({ title, intro, children }: { title: string; intro?: ComponentChildren; children?: ComponentChildren }) {
  return (
    <div class="page-header">
      <div>
        <h1>{title}</h1>
        {intro && <p class="page-intro">{intro}</p>}
      </div>
      {children && <div class="page-actions">{children}</div>}
    </div>
  );
}
