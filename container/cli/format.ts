/** Renders a result as a plain text table: arrays of objects as rows, objects as key/value pairs. */
export function formatTable(value: unknown): string {
  const rows = findRows(value);
  if (!rows) return keyValues(value);
  if (rows.length === 0) return "(none)";
  const columns = [...new Set(rows.flatMap((row) => Object.keys(row)))].filter((key) =>
    rows.some((row) => isScalar(row[key])),
  );
  const cells = rows.map((row) => columns.map((key) => cell(row[key])));
  const widths = columns.map((key, i) =>
    Math.min(60, Math.max(key.length, ...cells.map((line) => line[i]?.length ?? 0))),
  );
  const render = (line: string[]) =>
    line.map((text, i) => text.slice(0, widths[i]).padEnd(widths[i] ?? 0)).join("  ");
  return [render(columns), render(widths.map((w) => "-".repeat(w))), ...cells.map(render)].join("\n");
}

function findRows(value: unknown): Record<string, unknown>[] | undefined {
  if (Array.isArray(value)) return value as Record<string, unknown>[];
  if (value && typeof value === "object") {
    const arrays = Object.values(value).filter(Array.isArray);
    if (arrays.length === 1) return arrays[0] as Record<string, unknown>[];
  }
  return undefined;
}

function keyValues(value: unknown): string {
  if (!value || typeof value !== "object") return String(value);
  return Object.entries(value)
    .map(([key, item]) => `${key.padEnd(16)} ${isScalar(item) ? cell(item) : JSON.stringify(item)}`)
    .join("\n");
}

function isScalar(value: unknown): boolean {
  return value === null || ["string", "number", "boolean"].includes(typeof value);
}

function cell(value: unknown): string {
  return value === null || value === undefined ? "-" : String(value).replace(/\s+/g, " ");
}
