/** A date input's day (local) as the ISO instant it starts at, or ends at for an "until" filter. */
export function dayStart(day: string): string | null {
  if (!day) return null;
  const d = new Date(`${day}T00:00:00`);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

export function dayEnd(day: string): string | null {
  if (!day) return null;
  const d = new Date(`${day}T23:59:59.999`);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}
